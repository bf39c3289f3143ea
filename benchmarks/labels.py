"""DetectLabels: latency on 1280x720, the model's first load, RSS after it, and the known-content checks.

    .venv/bin/python benchmarks/labels.py [--runs 50] [--json OUT]

Everything runs in process through `Backend.call` (validation, decoding and shaping included; no HTTP). The
1280x720 input is scikit-image's coffee photo resized (a JPEG, as a client sends). Latency: 3 warm-up calls,
then `--runs` timed calls per feature set; p50/p99 of wall time; the classifier alone and the detector alone
are timed on the same pixels (the baseline the full call is a ratio of). First call: on a fresh backend with an
empty model cache (both conversions included), then on another with the graphs cached. RSS (Linux /proc): after
the imports, and after both models are loaded. The known-content checks are six scikit-image photos; the
models' published accuracies are quoted, not measured here (no ImageNet or COCO data installs from a registry).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from _common import memory_mib
from PIL import Image
from skimage import data

from facelens.config import ServerSettings
from facelens.imaging import decode_image
from facelens.models.registry import ModelConfig
from facelens.recognition.labels import LabelService
from facelens.service import build_faces

KNOWN = {"chelsea": "Cat", "coffee": "Espresso", "astronaut": "Person", "rocket": "Rocket", "camera": "Tripod",
         "stereo_motorcycle": "Motorcycle"}
PUBLISHED = ["YOLOv3-tiny, COCO test-dev at 416x416: 33.1 mAP@0.5 (published by darknet's authors; not measured here)",
             "EfficientNet-Lite2 (float), ImageNet-1k validation: 77.6% top-1 (published by Google for the TensorFlow "
             "checkpoint the package converts; not measured here)"]


def jpeg(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


def first_load(cache: Path, image: bytes) -> float:
    service = LabelService(ModelConfig(cache_dir=cache))
    start = time.perf_counter()
    service.detect_labels(image=image, features=["GENERAL_LABELS"])
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rss_start = memory_mib()[0]
    hd = jpeg(cv2.resize(data.coffee(), (1280, 720), interpolation=cv2.INTER_AREA))
    with tempfile.TemporaryDirectory() as cache:
        settings = ServerSettings.from_env({"FACELENS_CACHE": cache})
        backend = build_faces(settings)
        start = time.perf_counter()
        backend.call("DetectLabels", {"Image": hd})  # converts the darknet files, keeps the graph in the cache
        cold = time.perf_counter() - start
        rss_loaded = memory_mib()[0]
        cached = first_load(settings.models.cache_dir, hd)
        service = backend.labels
        pixels = decode_image(hd).pixels
        parts = {}
        for name, run in (("classifier", service.classifier.probabilities),
                          ("detector", service.detector.detect)):
            for _ in range(3):
                run(pixels)
            times = []
            for _ in range(args.runs):
                start = time.perf_counter()
                run(pixels)
                times.append((time.perf_counter() - start) * 1000)
            parts[name] = {"p50": round(float(np.percentile(times, 50)), 1),
                           "p99": round(float(np.percentile(times, 99)), 1)}
    report: dict = {"first_call_s": {"converting": round(cold, 3), "cached_graph": round(cached, 3)},
                    "rss_mib_at_start": round(rss_start, 1), "rss_mib_after_load": round(rss_loaded, 1),
                    "load": os.getloadavg(), "model_only_ms_1280x720": parts, "latency_ms_1280x720": {}, "known": {},
                    "published": PUBLISHED}
    for features in (["GENERAL_LABELS"], ["IMAGE_PROPERTIES"], ["GENERAL_LABELS", "IMAGE_PROPERTIES"]):
        request = {"Image": hd, "Features": features}
        for _ in range(3):
            backend.call("DetectLabels", request)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            backend.call("DetectLabels", request)
            times.append((time.perf_counter() - start) * 1000)
        report["latency_ms_1280x720"]["+".join(features)] = {
            "p50": round(float(np.percentile(times, 50)), 1), "p99": round(float(np.percentile(times, 99)), 1)}
    models = parts["classifier"]["p50"] + parts["detector"]["p50"]
    report["general_p50_over_models_p50"] = round(report["latency_ms_1280x720"]["GENERAL_LABELS"]["p50"] / models, 2)
    for name, expected in KNOWN.items():
        pixels = getattr(data, name)()
        pixels = pixels[0] if isinstance(pixels, tuple) else pixels  # stereo_motorcycle: (left, right, disparity)
        pixels = np.stack([pixels] * 3, -1) if pixels.ndim == 2 else pixels
        response = backend.call("DetectLabels", {"Image": jpeg(pixels), "MinConfidence": 20})
        found = [(label["Name"], round(label["Confidence"], 1), len(label["Instances"]))
                 for label in response["Labels"]]
        report["known"][name] = {"expected": expected, "labels_at_min_confidence_20 (name, confidence, instances)":
                                 found[:8], "found": any(label[0] == expected for label in found)}
    report["load_at_end"] = os.getloadavg()
    text = json.dumps(report, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")


if __name__ == "__main__":
    main()
