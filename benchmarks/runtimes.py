"""Each model session on onnxruntime and on OpenVINO, one thread per session, in one run (FACELENS_RUNTIME).

    .venv/bin/python benchmarks/runtimes.py [--rounds 3] [--calls 20]

For every model FaceLens runs through `facelens.models.runtime.make_session`, the same loader class is built
twice, with `ModelConfig(threads=1, runtime=...)`, and its public method is timed on the same real inputs
(scikit-image's astronaut and a 1920x1080 canvas of 42 copies of her face; her face crop for the per-face
models): --calls calls per timing, the two runtimes alternating for --rounds rounds so that load from other
processes falls on both; the median call time is reported with the ratio onnxruntime / OpenVINO (above 1:
OpenVINO is faster). The header prints the load average.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import cv2
import numpy as np
from skimage import data

from facelens.models import openvino
from facelens.models.registry import ModelConfig

RUNTIMES = ("onnxruntime", "openvino")


def workloads(config: ModelConfig) -> dict[str, Callable[[], object]]:
    from facelens.models.attributes import AgeGenderEstimator
    from facelens.models.detector import YuNetDetector
    from facelens.models.embedder import SFaceEmbedder
    from facelens.models.emotion import EmotionModel
    from facelens.models.mask import MaskModel
    from facelens.recognition.labels import Detector
    from facelens.recognition.moderation import OpenNsfw

    astronaut = data.astronaut()
    group = np.zeros((1080, 1920, 3), np.uint8)
    face = cv2.resize(astronaut[40:240, 140:320], (274, 180))
    for index in range(42):
        row, col = divmod(index, 7)
        group[row * 180:(row + 1) * 180, col * 274:(col + 1) * 274] = face
    lfw_like = [cv2.resize(astronaut, (250, 250))] * 16
    detector = YuNetDetector(config=config)
    box = detector.detect([astronaut])[0][0].box
    boxes = [box] * 8
    crop = cv2.resize(astronaut[int(box[1]):int(box[3]), int(box[0]):int(box[2])], (112, 112))
    embedder = SFaceEmbedder(config=config)
    ages = AgeGenderEstimator(config=config)
    emotion = EmotionModel(config)
    mask = MaskModel(config)
    labels = Detector(config)
    nsfw = OpenNsfw(config)
    return {
        "YuNet, 16 images of 250x250": lambda: detector.detect(lfw_like),
        "YuNet, one 1920x1080 image": lambda: detector.detect([group]),
        "SFace, 8 crops": lambda: embedder.embed([crop] * 8),
        "age + gender, 8 faces": lambda: ages.predict(astronaut, boxes),
        "expressions, 8 faces": lambda: emotion.predict(astronaut, boxes),
        "mask classifier, 8 faces": lambda: mask.predict(astronaut, boxes),
        "YOLOv3-tiny labels, 1 image": lambda: labels.detect(astronaut),
        "open_nsfw, 1 image": lambda: nsfw.scores([astronaut]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=20)
    args = parser.parse_args()
    if not openvino.available():
        print("SKIP: the openvino package is not installed")
        return
    runs = {runtime: workloads(ModelConfig(threads=1, runtime=runtime)) for runtime in RUNTIMES}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for name in runs["onnxruntime"]:
            for runtime in RUNTIMES:
                call = runs[runtime][name]
                call()
                start = time.perf_counter()
                for _ in range(args.calls):
                    call()
                times.setdefault((name, runtime), []).append((time.perf_counter() - start) / args.calls * 1000)
    print(f"{os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; one thread per session; median of "
          f"{args.rounds} rounds of {args.calls} calls\n")
    print("| model, input | onnxruntime ms | OpenVINO ms | onnxruntime / OpenVINO |")
    print("|---|---:|---:|---:|")
    for name in runs["onnxruntime"]:
        ort_ms = statistics.median(times[(name, "onnxruntime")])
        ov_ms = statistics.median(times[(name, "openvino")])
        print(f"| {name} | {ort_ms:.2f} | {ov_ms:.2f} | {ort_ms / ov_ms:.2f} |")


if __name__ == "__main__":
    main()
