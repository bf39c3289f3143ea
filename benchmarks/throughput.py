"""Throughput of detection and detection+embedding, FaceLens vs the dlib pipeline `face_recognition` runs.

    .venv/bin/python benchmarks/throughput.py [--images 200] [--dataset DIR]

Workloads: LFW images (250x250, one main face) and a 1920x1080 group image of 32 LFW faces. Images are decoded
before timing; each configuration runs once to warm up, then is timed. FaceLens runs with 1 and 2 threads per
session on each runtime setting (FACELENS_RUNTIME: onnxruntime for every model, and `auto`, what ships: the
recognizer on OpenVINO when installed, the detector on onnxruntime; fresh sessions per setting); the baseline
is dlib's HOG detector (1 upsample, as `face_recognition.face_locations` defaults to) + 5-point landmarks +
ResNet descriptor, dlib's own threading.
Ratios compare against that baseline measured in the same run. Skips when LFW is absent.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from _common import lfw_sample


def load(paths: list[Path]) -> list[np.ndarray]:
    return [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]


def group_image(images: list[np.ndarray]) -> np.ndarray:
    """8 x 4 tiles of 240x270: 32 faces on a 1920x1080 canvas."""
    canvas = np.zeros((1080, 1920, 3), dtype=np.uint8)
    for i, image in enumerate(images[:32]):
        row, col = divmod(i, 8)
        canvas[row * 270 : row * 270 + 270, col * 240 : col * 240 + 240] = cv2.resize(image, (240, 270))
    return canvas


def facelens_runner(threads: int, embed: bool, runtime: str) -> Callable[[list[np.ndarray]], int]:
    from facelens.models.registry import ModelConfig
    from facelens.pipeline import FaceAnalyzer

    analyzer = FaceAnalyzer(ModelConfig(threads=threads, runtime=runtime))  # fresh sessions, `threads` each

    def run(images: list[np.ndarray]) -> int:
        faces = 0
        for start in range(0, len(images), 16):
            batch = images[start : start + 16]
            found = analyzer.detect(batch)
            if embed:
                analyzer.embed(batch, found)
            faces += sum(len(f) for f in found)
        return faces

    return run


def dlib_runner(embed: bool) -> Callable[[list[np.ndarray]], int]:
    import dlib

    from facelens.models import registry

    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(registry.bundled(*registry.DLIB_5)))
    resnet = dlib.face_recognition_model_v1(str(registry.bundled(*registry.DLIB_RESNET)))

    def run(images: list[np.ndarray]) -> int:
        faces = 0
        for image in images:
            boxes = detector(image, 1)
            faces += len(boxes)
            if embed:
                for box in boxes:
                    resnet.compute_face_descriptor(image, predictor(image, box))
        return faces

    return run


def timed(run: Callable[[list[np.ndarray]], int], images: list[np.ndarray], repeat: int = 1) -> tuple[float, int]:
    run(images[:2])  # warm-up
    start = time.perf_counter()
    faces = 0
    for _ in range(repeat):
        faces += run(images)
    return time.perf_counter() - start, faces


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--dataset", default=None)
    args = parser.parse_args()
    chosen = lfw_sample(args.dataset, args.images)
    if chosen is None:
        return 0
    lfw = load(chosen)
    group = [group_image(load(chosen[:32]))] * 3
    print(f"{args.images} LFW images (250x250); group image 1920x1080 with 32 faces x 3; {os.cpu_count()} cores")
    from facelens.models import openvino

    runtimes = ["onnxruntime"] + (["auto"] if openvino.available() else [])
    print("\n| workload | task | pipeline | runtime | threads | images/s | faces/s | vs dlib (images/s) "
          "| vs dlib (faces/s) |")
    print("|---|---|---|---|---:|---:|---:|---:|---:|")
    for name, images in (("LFW", lfw), ("group 1080p", group)):
        for embed in (False, True):
            task = "detect+embed" if embed else "detect"
            seconds, faces = timed(dlib_runner(embed), images)
            base, base_faces = len(images) / seconds, faces / seconds
            print(f"| {name} | {task} | dlib HOG+ResNet | dlib | default | {base:.1f} | {base_faces:.1f} | 1.00 "
                  "| 1.00 |")
            for runtime in runtimes:
                for threads in (1, 2):
                    seconds, faces = timed(facelens_runner(threads, embed, runtime), images, repeat=2)
                    rate, face_rate = 2 * len(images) / seconds, faces / seconds
                    print(f"| {name} | {task} | FaceLens YuNet+SFace | {runtime} | {threads} | {rate:.1f} "
                          f"| {face_rate:.1f} | {rate / base:.2f} | {face_rate / base_faces:.2f} |")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
