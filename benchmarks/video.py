"""Stored-video face detection speed as a multiple of real time: decoding alone vs `detect_in_video`.

    .venv/bin/python benchmarks/video.py [--seconds 20] [--interval-ms 200] [--sizes 720,1080] [--threads 0]
                                         [--compare [--repeats 2]]

For each size the script encodes its own 30 fps clip with PyAV, outside the timed part (libx264 preset veryfast,
yuv420p, 4 Mbit/s at 720p and 8 Mbit/s at 1080p): a textured background (scikit-image's `brick`, tinted, with
mild per-frame noise) panning 1 px a frame, and up to three faces of 15% of the frame height (Eileen Collins from
`data.astronaut()`, her mirror image, and the cameraman from `data.camera()`) moving 2-4 px a frame at 720p
(3-6 at 1080p), entering and leaving the picture. Then, on the same clip in the same run:
  (a) decode + sample: `facelens.video.decode.frames(path, interval_ms)`, every frame decoded, one kept every
      `interval_ms` and converted to RGB -- the baseline, the part no face model can speed up;
  (b) `facelens.video.faces.detect_in_video(path, analyzer, resolve_attributes(None), interval_ms)`:
      the same decoding plus detection, embedding, the DEFAULT attributes and tracking, as StartFaceDetection
      (frames decoded ahead on a decode thread, `facelens.video.decode.prefetched`).
`--compare` then times, alternating on the same clip `--repeats` times each, `detect_in_video(..., prefetch=0)`
(the sequential loop as it was: each batch decoded on the calling thread between the model calls) against the
default (`prefetch=PREFETCH` frames decoded ahead), checks that both find the same faces at the same timestamps
with the same tracks and boxes, and prints the median seconds, real-time multiples and their ratio.
`--stand-in-ms MS` adds the same comparison with a stand-in analyzer that sleeps MS per frame and finds nothing:
inference that leaves the CPU free (as on a GPU), which shows the overlap itself on a machine the models saturate.
Reports seconds, the real-time multiple (clip duration / processing time), sampled frames/s, faces found (with
the number of faces pasted wholly inside the sampled frames, for reference) and the ratio (b)/(a). Models are
loaded and run once before timing. The models are those the environment configures (`facelens.config`:
FACELENS_THREADS, FACELENS_ORT_PROVIDERS, ...); `--threads` overrides their intra-op threads (0: every core
onnxruntime sees). Prints the onnxruntime providers the sessions use (CUDA when this onnxruntime build and the
machine have it).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from _common import write_video

FPS = 30
NOISE = 4.0  # std of the per-frame noise added to every pixel
SIZES = {"720": (1280, 720), "1080": (1920, 1080)}
MBIT = {"720": 4.0, "1080": 8.0}  # H.264 bitrates of web / streaming video at these sizes (phones record ~2x)


@dataclass(frozen=True)
class Sprite:
    """A face image moving horizontally; visible while `on(t)`; position wraps so it leaves and comes back."""

    image: np.ndarray
    top: float  # fraction of frame height
    speed: float  # px per frame at 720p (scaled with the frame height), negative: right to left
    start: float  # x of the left edge at frame 0, fraction of frame width
    on: Callable[[float], bool]

    def place(self, i: int, width: int, height: int) -> tuple[int, int] | None:
        """(x, y) of the sprite's top-left corner in frame i, or None when it is off."""
        if not self.on(i / FPS):
            return None
        size = self.image.shape[0]
        track = width + 2 * size  # from wholly left of the frame to wholly right of it
        x = (self.start * width + size + self.speed * height / 720 * i) % track - size
        return int(x), int(self.top * height)


class Timed:
    """An analyzer that adds up the seconds spent in each of its calls (detect, embed, describe)."""

    def __init__(self, analyzer: Any) -> None:
        self.analyzer = analyzer
        self.seconds = dict.fromkeys(("detect", "embed", "describe"), 0.0)

    def _call(self, name: str, *args: Any) -> Any:
        start = time.perf_counter()
        try:
            return getattr(self.analyzer, name)(*args)
        finally:
            self.seconds[name] += time.perf_counter() - start

    def detect(self, images: list[np.ndarray]) -> list[list[Any]]:
        return self._call("detect", images)

    def embed(self, images: list[np.ndarray], faces: list[list[Any]]) -> None:
        self._call("embed", images, faces)

    def describe(self, image: np.ndarray, faces: list[Any], fields: Collection[str]) -> None:
        self._call("describe", image, faces, fields)


class Sleeping:
    """A stand-in analyzer: `ms` of sleep per frame (the GIL released, the CPU left free), no faces."""

    def __init__(self, ms: float) -> None:
        self.ms = ms

    def detect(self, images: list[np.ndarray]) -> list[list[Any]]:
        time.sleep(self.ms / 1000 * len(images))
        return [[] for _ in images]

    def embed(self, images: list[np.ndarray], faces: list[list[Any]]) -> None:
        pass

    def describe(self, image: np.ndarray, faces: list[Any], fields: Collection[str]) -> None:
        pass


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def face_crop(analyzer: Any, image: np.ndarray, size: int) -> np.ndarray:
    """The largest face of `image` with a margin, resized to `size` px square."""
    (face, *_) = sorted(analyzer.detect([image])[0], key=lambda f: -f.area)
    x1, y1, x2, y2 = face.box
    pad = 0.35 * (x2 - x1)
    crop = image[max(0, int(y1 - pad)): int(y2 + pad), max(0, int(x1 - pad)): int(x2 + pad)]
    return cv2.resize(np.ascontiguousarray(crop), (size, size), interpolation=cv2.INTER_AREA)


def background(width: int, height: int) -> np.ndarray:
    """A tinted brick texture, 64 px wider than the frame so it can pan."""
    from skimage import data

    brick = data.brick()  # 512x512 grey
    reps = (-(-height // 512), -(-(width + 64) // 512))
    grey = np.tile(brick, reps)[:height, : width + 64].astype(np.float32) / 255
    ramp = np.linspace(0.6, 1.0, width + 64, dtype=np.float32)[None, :]
    tint = np.stack([grey * ramp * 200 + 30, grey * 170 + 40, grey * (1.6 - ramp) * 150 + 30], axis=-1)
    return np.clip(tint, 0, 255).astype(np.uint8)


def sprites(analyzer: Any, height: int) -> list[Sprite]:
    """Three faces: one always crossing, one crossing the other way, one present 6-14 s of every 20 s."""
    from skimage import data

    size = round(0.15 * height)
    astronaut = face_crop(analyzer, data.astronaut(), size)
    cameraman = face_crop(analyzer, np.stack([data.camera()] * 3, axis=-1), size)
    return [
        Sprite(astronaut, top=0.10, speed=4.0, start=-0.1, on=lambda t: True),
        Sprite(cameraman, top=0.55, speed=-3.0, start=0.7, on=lambda t: True),
        Sprite(np.ascontiguousarray(astronaut[:, ::-1]), top=0.32, speed=2.0, start=0.35,
               on=lambda t: 6.0 <= t % 20.0 < 14.0),
    ]


def draw(i: int, base: np.ndarray, faces: list[Sprite], width: int, height: int) -> np.ndarray:
    """Frame i: the background panned by i px (back and forth over 64 px) with the faces pasted, clipped."""
    shift = abs(i % 128 - 64)
    image = base[:, shift: shift + width].copy()
    for sprite in faces:
        where = sprite.place(i, width, height)
        if where is None:
            continue
        x, y = where
        h, w = sprite.image.shape[:2]
        x1, x2 = max(0, x), min(width, x + w)
        if x1 < x2:
            image[y: y + h, x1:x2] = sprite.image[:, x1 - x: x2 - x]
    return image


def visible(i: int, faces: list[Sprite], width: int, height: int) -> int:
    """Faces wholly inside frame i."""
    count = 0
    for sprite in faces:
        where = sprite.place(i, width, height)
        if where is not None and where[0] >= 0 and where[0] + sprite.image.shape[1] <= width:
            count += 1
    return count


def encode(path: Path, frames: int, width: int, height: int, faces: list[Sprite], mbit: float) -> None:
    """Write the clip (H.264 in MP4, 30 fps, yuv420p, about `mbit` Mbit/s) with mild sensor noise, so that the
    bits go to picture detail as in camera footage rather than to nothing."""
    base = background(width, height)
    rng = np.random.default_rng(0)
    noise = rng.normal(0, NOISE, (height + 32, width + 32, 3)).round().astype(np.int16)

    def noisy(i: int) -> np.ndarray:
        dy, dx = rng.integers(0, 32, 2)  # a different slice of the noise bank every frame
        image = draw(i, base, faces, width, height) + noise[dy: dy + height, dx: dx + width]
        return np.clip(image, 0, 255).astype(np.uint8)

    write_video(path, frames, FPS, "libx264", (width, height), noisy, options={"preset": "veryfast"},
                bit_rate=int(mbit * 1e6))


def compare(path: Path, analyzer: Any, fields: Collection[str], interval_ms: int, repeats: int, ahead: int,
            name: str, duration: float, detect_in_video: Callable[..., Any]) -> str:
    """A table row: `detect_in_video` with prefetch 0 and `ahead`, alternating, `repeats` times each."""
    seconds: dict[int, list[float]] = {0: [], ahead: []}
    found: dict[int, list[tuple[Any, ...]]] = {}
    for i in range(repeats):
        for prefetch in ((0, ahead) if i % 2 == 0 else (ahead, 0)):  # ABBA: drift in the load hits both alike
            start = time.perf_counter()
            _, faces = detect_in_video(path, analyzer, fields, interval_ms=interval_ms, prefetch=prefetch)
            seconds[prefetch].append(time.perf_counter() - start)
            found[prefetch] = [(f.timestamp_ms, f.track, tuple(np.round(f.face.box, 3))) for f in faces]
            print(f"  {name} prefetch={prefetch}: {seconds[prefetch][-1]:.2f} s, load "
                  f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
    before, after = float(np.median(seconds[0])), float(np.median(seconds[ahead]))
    runs = ", ".join(f"{a:.2f} / {b:.2f}" for a, b in zip(seconds[0], seconds[ahead], strict=True))
    same = "yes" if found[0] == found[ahead] else "NO"
    return (f"| {name} | {before:.2f} | {after:.2f} | {duration / before:.1f} | **{duration / after:.1f}** "
            f"| {before / after:.2f} | {runs} | {same} ({len(found[0])}) |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0, help="clip length (default 20)")
    parser.add_argument("--interval-ms", type=int, default=200, help="sampling interval (default 200)")
    parser.add_argument("--sizes", default="720,1080", help="comma-separated, of 720 and 1080")
    parser.add_argument("--threads", type=int, default=None,
                        help="onnxruntime threads per model session (default: FACELENS_THREADS, else 0 = all cores)")
    parser.add_argument("--compare", action="store_true",
                        help="also time the sequential loop (prefetch=0) against decode-ahead, alternating")
    parser.add_argument("--repeats", type=int, default=2, help="--compare: runs of each, alternating (default 2)")
    parser.add_argument("--stand-in-ms", type=float, default=None,
                        help="--compare: also with a stand-in analyzer sleeping this many ms per frame")
    args = parser.parse_args()
    sizes = [s.strip().removesuffix("p") for s in args.sizes.split(",") if s.strip()]
    if unknown := [s for s in sizes if s not in SIZES]:
        parser.error(f"unknown size(s) {unknown}; choose from {', '.join(SIZES)}")
    import onnxruntime as ort

    from facelens.config import models_from_env
    from facelens.pipeline import FaceAnalyzer, resolve_attributes
    from facelens.video.decode import PREFETCH, frames
    from facelens.video.faces import detect_in_video

    config = models_from_env()  # the models and session options the environment names (FACELENS_THREADS, ...)
    if args.threads is not None:
        config = replace(config, threads=args.threads)
    analyzer = FaceAnalyzer(config)
    analyzer.warmup()
    fields = resolve_attributes(None)
    in_use = sorted({p for model in (analyzer.detector, analyzer.embedder)
                     for p in model.session.get_providers()})
    print(f"Date {datetime.date.today().isoformat()}; {os.cpu_count()} cores ({cpu_name()}); Python "
          f"{platform.python_version()}, PyAV {av.__version__} (libavcodec "
          f"{'.'.join(map(str, av.library_versions['libavcodec']))}), onnxruntime {ort.__version__}")
    print(f"onnxruntime providers available: {', '.join(ort.get_available_providers())}; in use: "
          f"{', '.join(in_use)}; onnxruntime threads per session: "
          f"{config.threads or '0 (every core)'}")
    print(f"Clips: {args.seconds:g} s at {FPS} fps, H.264 (libx264 veryfast, yuv420p, average bitrate "
          f"{' / '.join(f'{MBIT[s]:g}' for s in sizes)} Mbit/s) in MP4; sampling every "
          f"{args.interval_ms} ms; attributes DEFAULT ({', '.join(sorted(fields))}); "
          f"load average at start {os.getloadavg()[0]:.2f}")
    sys.stdout.flush()

    rows: list[str] = []
    split: list[str] = []
    compared: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in sizes:
            width, height = SIZES[size]
            count = round(args.seconds * FPS)
            faces = sprites(analyzer, height)
            path = Path(tmp) / f"clip_{size}p.mp4"
            encode(path, count, width, height, faces, MBIT[size])
            # warm-up at this frame size (the detector's input shape follows the frame's aspect ratio)
            warm = [draw(0, background(width, height), faces, width, height)] * 8
            analyzer.embed(warm, analyzer.detect(warm))

            start = time.perf_counter()
            stamps = [timestamp for timestamp, _ in frames(path, args.interval_ms)]
            decode_s = time.perf_counter() - start

            start = time.perf_counter()
            timed = Timed(analyzer)
            metadata, found = detect_in_video(path, timed, fields, interval_ms=args.interval_ms)
            detect_s = time.perf_counter() - start

            duration = metadata.duration_ms / 1000
            pasted = sum(visible(round(t * FPS / 1000), faces, width, height) for t in stamps)
            tracks = len({face.track for face in found})
            mbit = path.stat().st_size * 8 / duration / 1e6
            name = f"{width}x{height} ({mbit:.1f} Mbit/s)"
            rows.append(f"| {name} | decode + sample (`frames`) | {decode_s:.2f} | {duration / decode_s:.1f} "
                        f"| {len(stamps) / decode_s:.1f} | - | 1.00 |")
            rows.append(f"| {name} | `detect_in_video` | {detect_s:.2f} | **{duration / detect_s:.1f}** "
                        f"| {len(stamps) / detect_s:.1f} | {len(found)} / {pasted} ({tracks}) "
                        f"| {detect_s / decode_s:.2f} |")
            per = 1000 / len(stamps)
            parts = timed.seconds
            rest = detect_s - decode_s - sum(parts.values())
            split.append(f"| {width}x{height} | {decode_s * per:.1f} | {parts['detect'] * per:.1f} "
                         f"| {parts['embed'] * per:.1f} | {parts['describe'] * per:.1f} | {rest * per:.1f} "
                         f"| {detect_s * per:.1f} |")
            print(f"  {width}x{height}: {len(stamps)} sampled frames of {count}, {duration:.2f} s", file=sys.stderr)
            if args.compare:
                compared.append(compare(path, analyzer, fields, args.interval_ms, args.repeats, PREFETCH,
                                        f"{width}x{height}", duration, detect_in_video))
                if args.stand_in_ms is not None:
                    compared.append(compare(path, Sleeping(args.stand_in_ms), (), args.interval_ms, args.repeats,
                                            PREFETCH, f"{width}x{height}, stand-in models sleeping "
                                            f"{args.stand_in_ms:g} ms/frame", duration, detect_in_video))

    print("\n| clip | stage | seconds | x real time | sampled frames/s | faces found / whole faces pasted (tracks) | "
          "time vs decode |")
    print("|---|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print("\nWhere the time of `detect_in_video` goes, ms per sampled frame (decode: run (a); rest: tracking, "
          "FaceDetail, batching, the difference between the runs, less the decoding hidden behind the models by "
          "decoding ahead, so it can be negative):\n")
    print("| clip | decode + sample | detect | embed | describe (DEFAULT) | rest | total |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    print("\n".join(split))
    if compared:
        print(f"\n`detect_in_video` sequential (`prefetch=0`, the loop as it was) vs decoding ahead "
              f"(`prefetch={PREFETCH}`), alternating, {args.repeats} runs each, median seconds:\n")
        print("| clip | sequential s | decode ahead s | sequential x real time | decode ahead x real time | "
              "speed-up | runs (s, sequential / ahead) | same faces |")
        print("|---|---:|---:|---:|---:|---:|---|---|")
        print("\n".join(compared))
    print(f"\nload average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
