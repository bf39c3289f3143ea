"""Stored-video analyses' speed as a multiple of real time (seconds of video per second), against decoding alone.

    .venv/bin/python benchmarks/video_analyses.py [--seconds 20] [--size 1280x720] [--kinds labels,moderation,...]

The script encodes its own 30 fps H.264 clip with PyAV, outside the timed part: scikit-image's cat, coffee,
cameraman and astronaut photographs panning 1 px a frame, one after the other, with a second of black and a
text card between them (so every analysis has something to find). Then, on that clip in the same run:
  (a) baselines: `decode.frames(path, 200)` (every frame decoded, one RGB frame kept every 200 ms) and
      `decode.every_frame(path, 160)` (every frame decoded and scaled to 160 px);
  (b) each runner of `facelens.domain.video_analyses` as a job runs it (labels, moderation, text, persons,
      segments), with the real models, sampled at the default 200 ms (text: 1000 ms).
Reports seconds, the real-time multiple (clip duration / processing time), results found, and the ratio of
each runner's time to its decoding baseline. Models are loaded and run once before timing.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from _common import write_video

from facelens.config import models_from_env
from facelens.context import RequestContext
from facelens.domain import video_analyses
from facelens.pipeline import analyzer_for
from facelens.recognition.labels import LabelService
from facelens.recognition.moderation import ModerationService
from facelens.recognition.text import TextReader, TextService
from facelens.video import decode
from facelens.video.source import VideoFile

FPS = 30
KINDS = ("labels", "moderation", "text", "persons", "segments")


def clip(path: Path, seconds: float, width: int, height: int) -> Path:
    import cv2
    from skimage import data

    photos = [data.chelsea(), data.coffee(), np.stack([data.camera()] * 3, -1), data.astronaut()]
    card = np.full((height, width, 3), 255, np.uint8)
    cv2.putText(card, "FACELENS 2026", (width // 12, height // 2), cv2.FONT_HERSHEY_SIMPLEX, height / 160,
                (0, 0, 0), max(2, height // 60), cv2.LINE_AA)
    scaled = []
    for photo in photos:
        scale = max((width + 200) / photo.shape[1], height / photo.shape[0])
        scaled.append(cv2.resize(photo, (round(photo.shape[1] * scale), round(photo.shape[0] * scale))))

    def draw(i: int) -> np.ndarray:
        second = i // FPS
        if second % 5 == 4:  # every fifth second: black, or the text card
            return card if second % 10 == 9 else np.zeros((height, width, 3), np.uint8)
        photo = scaled[(second // 5) % len(scaled)]
        top, shift = (photo.shape[0] - height) // 2, i % 150
        return np.ascontiguousarray(photo[top:top + height, shift:shift + width])

    return write_video(path, round(seconds * FPS), FPS, "libx264", (width, height), draw,
                       options={"preset": "veryfast"})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--kinds", default=",".join(KINDS))
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    config = models_from_env()
    labels = LabelService(config)
    service = SimpleNamespace(interval_ms=decode.DEFAULT_INTERVAL_MS, persist=lambda result: {}, labels=labels,
                              moderation=ModerationService(config), text=TextService(TextReader(config)),
                              analyzer=analyzer_for(config))
    warm = np.zeros((height, width, 3), np.uint8)  # load every model before timing
    labels.labels_of(warm)
    service.moderation.moderate([])
    service.text.reader.read(warm)
    service.analyzer.detect([warm])
    requests = {"segments": {"SegmentTypes": ["SHOT", "TECHNICAL_CUE"]}}
    print(f"# {datetime.date.today()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}, "
          f"{width}x{height} {FPS} fps, {args.seconds:g} s clip")
    with tempfile.TemporaryDirectory() as folder:
        source = VideoFile(clip(Path(folder) / "clip.mp4", args.seconds, width, height))
        rows = []
        for name, run in (("decode + sample (200 ms)", lambda: list(decode.frames(source, 200))),
                          ("decode + sample (1000 ms)", lambda: list(decode.frames(source, 1000))),
                          ("decode every frame at 160 px", lambda: list(decode.every_frame(source, 160)))):
            start = time.perf_counter()
            count = len(run())
            rows.append((name, time.perf_counter() - start, f"{count} frames"))
        base = {"segments": rows[2][1], "text": rows[1][1]}
        for kind in args.kinds.split(","):
            runner = getattr(video_analyses, "segments_of" if kind == "segments" else kind)
            job = SimpleNamespace(request={"Video": {}, **requests.get(kind, {})}, job_id="bench")
            start = time.perf_counter()
            results, _ = runner(service, job, source, lambda ms: None, RequestContext())
            seconds = time.perf_counter() - start
            rows.append((kind, seconds, f"{len(results)} results", seconds / base.get(kind, rows[0][1])))
        print("| run | seconds | x real time | found | / its decoding |\n|---|---|---|---|---|")
        for name, seconds, found, *ratio in rows:
            print(f"| {name} | {seconds:.2f} | **{args.seconds / seconds:.1f}** | {found} | "
                  f"{f'{ratio[0]:.1f}' if ratio else ''} |")


if __name__ == "__main__":
    main()
