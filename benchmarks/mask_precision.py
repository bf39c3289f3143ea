"""The FaceOccluded mask classifier in fp32 (what ships) against the same graph at lower precision: a static
int8 quantization on onnxruntime, and bfloat16 on OpenVINO where the CPU has it (AVX512_BF16 or AMX).

    .venv/bin/python benchmarks/mask_precision.py [--faces 300] [--rounds 7] [--dataset DIR]

Faces: `--faces` LFW photos (seeded choice), the best-scored YuNet face of each, bare and with
tests/cover_fixtures.py's pleated surgical mask drawn on in three colours (light blue, white, dark). Each
crop is the classifier's input as `facelens.models.mask.classifier_input` makes it (raw pixels, no JPEG round trip).
The int8 graph: onnxruntime's `quantize_static` (QDQ, per-channel int8 weights, uint8 activations) calibrated on
the 32 photos after the sample (half of the crops masked). The bf16 graph: `OpenVinoSession(precision="bf16")`.
Reported:

- time for one 49-face batch on one thread (DetectFaces ALL's 49-face photo of benchmarks/detect_all.py), the
  graphs in rotating order for `--rounds` rounds, medians, and the ratio fp32 / graph;
- for each graph and set of crops: the share answered "mask" (P >= 0.5), the largest and mean |P - P_fp32|,
  and the faces whose answer differs from fp32's.

The share of drawn masks found is the classifier's recall on *drawn* masks and the bare share its false-positive
rate on LFW: synthetic positives, not a measured rate on real masked photos. Skips when LFW is absent.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
from _common import lfw_sample, load_average
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process

from facelens.models import openvino
from facelens.models.detector import YuNetDetector
from facelens.models.keras_onnx import convert
from facelens.models.landmarks import DlibLandmarker
from facelens.models.mask import RECIPE, classifier_input
from facelens.models.registry import MASK, ModelConfig, bundled
from facelens.models.runtime import converted
from tests.cover_fixtures import DARK, LIGHT_BLUE, WHITE, masked

COVERS = {"bare": None, "light blue mask": LIGHT_BLUE, "white mask": WHITE, "dark mask": DARK}


def crop_sets(paths: list[Path], detector: YuNetDetector, landmarker: DlibLandmarker) -> dict[str, np.ndarray]:
    """{cover: (faces, 3, 224, 224)} for the photos where YuNet finds a face."""
    sets: dict[str, list[np.ndarray]] = {name: [] for name in COVERS}
    for path in paths:
        image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        found = detector.detect([image])[0]
        if not found:
            continue
        for name, colour in COVERS.items():
            shown = image if colour is None else masked(image, colour, detector=detector, landmarker=landmarker)
            sets[name].append(classifier_input(shown, [found[0].box])[0])
    return {name: np.stack(crops) for name, crops in sets.items()}


class Batches(CalibrationDataReader):
    def __init__(self, crops: np.ndarray) -> None:
        self.batches = iter([{"input": crops[i:i + 8]} for i in range(0, len(crops), 8)])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.batches, None)


def session(model: bytes | str) -> ort.InferenceSession:
    """An onnxruntime CPU session on one thread, as `facelens serve` runs each model."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def probabilities(run: ort.InferenceSession | openvino.OpenVinoSession, crops: np.ndarray) -> np.ndarray:
    """P(mask) of each crop, in batches of 49."""
    return np.concatenate([run.run(None, {"input": crops[i:i + 49]})[0][:, 0] for i in range(0, len(crops), 49)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--faces", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--dataset")
    args = parser.parse_args()
    paths = lfw_sample(args.dataset, args.faces + 32)
    if paths is None:
        return
    print(f"load average at start: {load_average()}; onnxruntime {ort.__version__}, one thread")
    detector, landmarker = YuNetDetector(), DlibLandmarker()
    sets = crop_sets(paths[:args.faces], detector, landmarker)
    calibration = crop_sets(paths[args.faces:], detector, landmarker)
    calib = np.concatenate([calibration["bare"], calibration["light blue mask"]])[:64]
    fp32_bytes = converted(bundled(*MASK), RECIPE, convert, ModelConfig().cache_dir)
    with tempfile.TemporaryDirectory() as tmp:
        source, prepared, int8 = (str(Path(tmp) / name) for name in ("fp32.onnx", "pre.onnx", "int8.onnx"))
        Path(source).write_bytes(fp32_bytes)
        quant_pre_process(source, prepared)
        quantize_static(prepared, int8, Batches(calib), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        graphs = {"fp32 (onnxruntime)": session(fp32_bytes), "int8 QDQ (onnxruntime)": session(int8)}
    if openvino.available() and "BF16" in openvino.cpu_capabilities():
        graphs["bf16 (OpenVINO)"] = openvino.OpenVinoSession(fp32_bytes, threads=1, precision="bf16")
    else:
        print("bf16: this CPU has no bfloat16 instructions (or OpenVINO is absent); not measured")

    batch = np.concatenate(list(sets.values()))[:49]
    times: dict[str, list[float]] = {name: [] for name in graphs}
    names = list(graphs)
    for round_ in range(args.rounds):
        for name in names[round_ % len(names):] + names[:round_ % len(names)]:
            start = time.perf_counter()
            graphs[name].run(None, {"input": batch})
            times[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(times[names[0]])
    print("\n| graph | 49 faces, median ms | fp32 / graph |\n|---|---:|---:|")
    for name in names:
        print(f"| {name} | {statistics.median(times[name]):.1f} | {base / statistics.median(times[name]):.2f} |")

    print("\n| graph | faces | n | says mask | max abs dP | mean abs dP | answers unlike fp32 |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for cover, crops in sets.items():
        reference = probabilities(graphs[names[0]], crops)
        for name in names:
            p = reference if name == names[0] else probabilities(graphs[name], crops)
            delta = np.abs(p - reference)
            flips = int(np.sum((reference >= 0.5) != (p >= 0.5)))
            print(f"| {name} | {cover} | {len(crops)} | {np.mean(p >= 0.5):.1%} | {delta.max():.3f} | "
                  f"{delta.mean():.4f} | {flips} |")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
