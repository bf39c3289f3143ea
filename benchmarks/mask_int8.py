"""The FaceOccluded mask classifier in fp32 (what ships) against a static int8 quantization of the same graph.

    .venv/bin/python benchmarks/mask_int8.py [--faces 300] [--rounds 7] [--dataset DIR]

Faces: `--faces` LFW photos (seeded choice), the best-scored YuNet face of each, bare and with
tests/unit/test_face_cover.py's pleated surgical mask drawn on in three colours (light blue, white, dark). Each
crop is the classifier's input as `facelens.models.mask.classifier_input` makes it (raw pixels, no JPEG round trip).
The int8 graph: onnxruntime's `quantize_static` (QDQ, per-channel int8 weights, uint8 activations) calibrated on
64 crops of *other* LFW photos (seed 1, half of them masked). Reported:

- time for one 49-face batch on one thread (DetectFaces ALL's 49-face photo of benchmarks/detect_all.py), the
  two graphs alternating for `--rounds` rounds, medians, and the ratio fp32 / int8;
- for each set of crops: the share fp32 answers "mask" (P >= 0.5), the largest and mean |P_int8 - P_fp32|,
  and the faces whose answer flips.

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

from facelens.models.detector import YuNetDetector
from facelens.models.keras_onnx import convert
from facelens.models.landmarks import DlibLandmarker
from facelens.models.mask import RECIPE, classifier_input
from facelens.models.registry import MASK, ModelConfig, bundled
from facelens.models.runtime import converted
from tests.unit.test_face_cover import masked

COVERS = {"bare": None, "light blue mask": (190, 215, 235), "white mask": (245, 245, 245),
          "dark mask": (40, 40, 60)}


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
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def probabilities(run: ort.InferenceSession, crops: np.ndarray) -> np.ndarray:
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
        graphs = {"fp32": session(fp32_bytes), "int8": session(int8)}

    batch = np.concatenate(list(sets.values()))[:49]
    times: dict[str, list[float]] = {name: [] for name in graphs}
    for round_ in range(args.rounds):
        for name in (list(graphs) if round_ % 2 == 0 else list(graphs)[::-1]):
            start = time.perf_counter()
            graphs[name].run(None, {"input": batch})
            times[name].append((time.perf_counter() - start) * 1000)
    fp32_ms, int8_ms = (statistics.median(times[name]) for name in graphs)
    print(f"\n| graph | 49 faces, median ms | fp32 / int8 |\n|---|---:|---:|\n| fp32 | {fp32_ms:.1f} | 1.00 |\n"
          f"| int8 (QDQ) | {int8_ms:.1f} | {fp32_ms / int8_ms:.2f} |")

    print("\n| faces | n | fp32 says mask | int8 says mask | max abs dP | mean abs dP | answers flipped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, crops in sets.items():
        reference, quantized = probabilities(graphs["fp32"], crops), probabilities(graphs["int8"], crops)
        delta = np.abs(quantized - reference)
        flips = int(np.sum((reference >= 0.5) != (quantized >= 0.5)))
        print(f"| {name} | {len(crops)} | {np.mean(reference >= 0.5):.1%} | {np.mean(quantized >= 0.5):.1%} | "
              f"{delta.max():.3f} | {delta.mean():.4f} | {flips} |")
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
