"""DetectFaces `Attributes=["ALL"]` on a many-face 1080p photo: the describe path before and after, per model.

    .venv/bin/python benchmarks/detect_all.py [--faces 42] [--rounds 30] [--threads 1] [--dataset DIR] [--service]

The image: `--faces` LFW photos (seeded choice), each resized to 180x180 and tiled 7 to a row on a 1920x1080
canvas, JPEG-encoded once. Each round runs the face path DetectFaces runs (`analysis.find_faces_in`: decode,
YuNet, the 100 largest faces, describe with every ALL field) twice, in alternating order: "before" with
`sequential_describe` (the describe of commit 0f2fafd, kept verbatim below: each model one batch, every step one
after another on the calling thread, MediaPipe Iris on onnxruntime) and "after" with `FaceAnalyzer.describe`
(the same models, independent parts run on the describe pool and the caller, Iris on OpenVINO under `auto`).
Both share one analyzer (the same sessions, `--threads` threads each; the service's default is 1) except Iris.
The answers of both are compared (largest difference over every FaceDetail number) before timing. Then each
model's share: every step timed alone on the same faces, medians over `--rounds // 3` runs. `--service` then
starts `facelens serve` (benchmarks/service.py's `start_server`, FACELENS_THREADS=`--threads`) and sends the same
JPEG as boto3 DetectFaces(Attributes=["ALL"]), `--rounds` times alternating with the in-process "after" call.
Ends with the machine's load average, since the cores are shared.
Skips when LFW is absent.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

import cv2
import numpy as np
from _common import lfw_sample, load_average

from facelens.analysis import find_faces_in
from facelens.api.shapes import face_detail
from facelens.domain.model import FoundFace
from facelens.imaging import decode_image
from facelens.models.registry import ModelConfig
from facelens.pipeline import ATTRIBUTE_GROUPS, Face, FaceAnalyzer, resolve_attributes

ALL = resolve_attributes(["ALL"])


def group_photo(paths: Sequence[Path]) -> np.ndarray:
    """180x180 tiles, 7 per row (centred in 274 px columns), on a black 1920x1080 canvas."""
    canvas = np.zeros((1080, 1920, 3), np.uint8)
    for i, path in enumerate(paths):
        row, col = divmod(i, 7)
        tile = cv2.resize(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB), (180, 180),
                          interpolation=cv2.INTER_AREA)
        canvas[row * 180:(row + 1) * 180, col * 274 + 47:col * 274 + 227] = tile
    return canvas


def sequential_describe(analyzer: FaceAnalyzer, image: np.ndarray, faces: Sequence[Face],
                        fields: Collection[str], iris: object) -> None:
    """`FaceAnalyzer.describe` as it was before the describe pool (commit 0f2fafd), the baseline; `iris`: the
    MediaPipe Iris model as it was then (on onnxruntime)."""
    from facelens import geometry, quality

    height, width = image.shape[:2]
    need_68 = bool({"Pose", "EyesOpen", "MouthOpen", "AllLandmarks", "EyeDirection"} & set(fields))
    if need_68:
        landmarker = analyzer._model("landmarks")
        for face in faces:
            face.landmarks68 = landmarker.landmarks68(image, face.box)
    for face in faces:
        if "Pose" in fields:
            face.pose = geometry.head_pose(face.landmarks68, width, height)
        if "Quality" in fields:
            face.quality = quality.face_quality(image, face.box)
        if "EyesOpen" in fields:
            face.eyes_open = geometry.eyes_open(face.landmarks68)
        if "MouthOpen" in fields:
            face.mouth_open = geometry.mouth_open(face.landmarks68)
    if {"AgeRange", "Gender"} & set(fields) and faces:
        estimates = analyzer._model("age_gender").predict(image, [face.box for face in faces])
        for face, estimate in zip(faces, estimates, strict=True):
            face.age_gender = estimate
    if {"Emotions", "Smile"} & set(fields) and faces:
        probabilities = analyzer._model("emotion").predict(image, [face.box for face in faces])
        for face, row in zip(faces, probabilities, strict=True):
            face.emotions = row
    if "FaceOccluded" in fields and faces:
        covered = analyzer._model("mask").predict(image, [face.box for face in faces])
        for face, p in zip(faces, covered, strict=True):
            face.masked = float(p)
    if "EyeDirection" in fields and faces:
        gazes = iris.predict(image, [face.landmarks68 for face in faces])  # type: ignore[attr-defined]
        for face, gaze in zip(faces, gazes, strict=True):
            face.eye_direction = gaze


class Before:
    """The analyzer with the baseline describe (the face path's `Analyzer` protocol)."""

    def __init__(self, analyzer: FaceAnalyzer) -> None:
        from facelens.models.iris import IrisModel

        self.analyzer = analyzer
        self.detect, self.embed = analyzer.detect, analyzer.embed
        self.iris = IrisModel(analyzer.config)  # onnxruntime unless FACELENS_RUNTIME=openvino, as before

    def describe(self, image: np.ndarray, faces: Sequence[Face], fields: Collection[str]) -> None:
        sequential_describe(self.analyzer, image, faces, fields, self.iris)


def numbers(value: object) -> list[float]:
    """Every number of a FaceDetail, in a fixed order (booleans and labels as 0/1 and hashes)."""
    if isinstance(value, dict):
        return [n for key in sorted(value) for n in numbers(value[key])]
    if isinstance(value, list):
        return [n for item in value for n in numbers(item)]
    if isinstance(value, bool | str):
        return [float(hash(value) % 1000)]
    return [float(value)]


def details(analyzer: object, jpeg: bytes) -> list[dict]:
    found = find_faces_in(analyzer, jpeg, ALL)
    return [face_detail(FoundFace(face, found.image.width, found.image.height, ALL)) for face, _ in found.faces]


def median_ms(run: Callable[[], object], repeat: int) -> float:
    run()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def percentiles(values: list[float]) -> tuple[float, float]:
    ordered = sorted(values)
    return statistics.median(ordered), ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def through_service(jpeg: bytes, analyzer: FaceAnalyzer, rounds: int, threads: int, faces: int) -> None:
    """DetectFaces ALL through `facelens serve` and boto3, alternating with the in-process call."""
    import signal
    import tempfile

    import boto3

    sys.path.insert(0, str(Path(__file__).parent))
    from service import KEY_ID, SECRET, start_server

    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(Path(tmp), threads)
        try:
            client = boto3.client("rekognition", endpoint_url=url, region_name="us-east-1",
                                  aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)
            answered = client.detect_faces(Image={"Bytes": jpeg}, Attributes=["ALL"])["FaceDetails"]
            assert len(answered) == faces, (len(answered), faces)
            timings: dict[str, list[float]] = {"service": [], "in process": []}
            for _ in range(rounds):
                start = time.perf_counter()
                client.detect_faces(Image={"Bytes": jpeg}, Attributes=["ALL"])
                timings["service"].append(1000 * (time.perf_counter() - start))
                start = time.perf_counter()
                find_faces_in(analyzer, jpeg, ALL)
                timings["in process"].append(1000 * (time.perf_counter() - start))
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    print(f"\n| DetectFaces ALL, after ({faces} faces) | p50 ms | p99 ms |")
    print("|---|---:|---:|")
    for name, values in timings.items():
        p50, p99 = percentiles(values)
        print(f"| {name}{' (boto3, facelens serve)' if name == 'service' else ''} | {p50:.1f} | {p99:.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--faces", type=int, default=42)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--dataset", default=None)
    parser.add_argument("--service", action="store_true", help="also time DetectFaces ALL through boto3")
    args = parser.parse_args()
    chosen = lfw_sample(args.dataset, args.faces)
    if chosen is None:
        return 0
    jpeg = cv2.imencode(".jpg", cv2.cvtColor(group_photo(chosen), cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, 92])[1].tobytes()
    analyzer = FaceAnalyzer(ModelConfig(threads=args.threads, runtime=os.environ.get("FACELENS_RUNTIME", "auto")))
    before = Before(analyzer)
    print(f"load average at start: {load_average()}; {os.cpu_count()} cores; "
          f"{args.threads} onnxruntime thread(s) per session")
    old, new = details(before, jpeg), details(analyzer, jpeg)
    assert len(old) == len(new), (len(old), len(new))
    diff = max(abs(a - b) for o, n in zip(old, new, strict=True)
               for a, b in zip(numbers(o), numbers(n), strict=True))
    print(f"{args.faces} LFW photos on 1920x1080, {len(jpeg) / 1024:.0f} KiB JPEG: {len(new)} faces detected; "
          f"largest difference between before and after over every FaceDetail number: {diff:g}")

    timings: dict[str, list[float]] = {"before": [], "after": []}
    for round_ in range(args.rounds):
        order = (("before", before), ("after", analyzer)) if round_ % 2 == 0 else (("after", analyzer),
                                                                                   ("before", before))
        for name, which in order:
            start = time.perf_counter()
            find_faces_in(which, jpeg, ALL)
            timings[name].append(1000 * (time.perf_counter() - start))
    print("\n| DetectFaces ALL (in process, face path) | p50 ms | p99 ms | mean ms | p50 vs before |")
    print("|---|---:|---:|---:|---:|")
    base = statistics.median(timings["before"])
    for name in ("before", "after"):
        values = sorted(timings[name])
        p99 = values[min(len(values) - 1, round(0.99 * (len(values) - 1)))]
        print(f"| {name} | {statistics.median(values):.1f} | {p99:.1f} | {statistics.fmean(values):.1f} "
              f"| {statistics.median(values) / base:.2f} |")

    repeat = max(3, args.rounds // 3)
    decoded = decode_image(jpeg)
    image = decoded.pixels
    faces = [face for face, _ in find_faces_in(analyzer, jpeg, ALL).faces]
    boxes = [face.box for face in faces]
    landmarker, estimator = analyzer._model("landmarks"), analyzer._model("age_gender")
    chips = [landmarker.face_chips(image, box, (estimator.age_size, estimator.gender_size)) for box in boxes]
    steps: list[tuple[str, Callable[[], object]]] = [
        ("decode JPEG", lambda: decode_image(jpeg)),
        ("YuNet detection", lambda: analyzer.detect([image])),
        ("dlib 68 points (per face)", lambda: [landmarker.landmarks68(image, box) for box in boxes]),
        ("dlib 5 points + age/gender chips (per face)",
         lambda: [landmarker.face_chips(image, box, (estimator.age_size, estimator.gender_size)) for box in boxes]),
        ("age + gender networks (one batch each)",
         lambda: estimator.predict_chips([a for a, _ in chips], [g for _, g in chips])),
        ("expressions (one batch)", lambda: analyzer._model("emotion").predict(image, boxes)),
        ("mask classifier, 224x224 (one batch)", lambda: analyzer._model("mask").predict(image, boxes)),
        ("MediaPipe iris, 2 eyes a face (one batch), before: onnxruntime",
         lambda: before.iris.predict(image, [face.landmarks68 for face in faces])),
        (f"MediaPipe iris, 2 eyes a face (one batch), after: {type(analyzer._model('iris').session).__name__}",
         lambda: analyzer._model("iris").predict(image, [face.landmarks68 for face in faces])),
    ]
    print(f"\n| step ({len(faces)} faces) | median ms | share of the steps |")
    print("|---|---:|---:|")
    measured = [(name, median_ms(run, repeat)) for name, run in steps]
    total = sum(ms for _, ms in measured)
    for name, ms in measured:
        print(f"| {name} | {ms:.1f} | {ms / total:.0%} |")
    print(f"| sum of the steps (one thread; iris counted twice) | {total:.1f} | |")
    if args.service:
        through_service(jpeg, analyzer, args.rounds, args.threads, len(new))
    print(f"\nload average at end: {load_average()}; "
          f"ALL = {sorted(ATTRIBUTE_GROUPS['ALL'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
