"""Live video: how many 720p30 RTSP cameras one machine keeps up with, at the default sampling (200 ms).

    .venv/bin/python benchmarks/streams.py [--cameras 1,2,4,6] [--seconds 20] [--interval-ms 200]

Real components, as in tests/integration/test_streams.py: each camera is GStreamer's RTSP server (Debian's
gstreamer1.0-rtsp with python3-gi; `make rtsp`) playing, in real time, a 720p30 H.264 clip this script renders
with PyAV (a textured grey background with Eileen Collins' face, from scikit-image's astronaut, drifting across it,
and the cameraman's face half the time); Kinesis is moto's standalone server. FaceLens runs in this process
(`facelens.service.build`, the server's composition), with one face-search stream processor per camera on a
collection holding Eileen's face.

For each number of cameras, after a warm-up of 4 s, for `--seconds`:
  - frames analysed per second per camera (the sampling asks for 1000 / interval-ms) and the share of samples
    skipped because the processor was still busy with the previous one (the feed keeps only the newest sample,
    so a processor that cannot keep up skips samples instead of falling behind the camera);
  - latency from a frame's decoding to its record written to Kinesis (p50 / p99), and from the frame's arrival
    (the record's ServerTimestamp + FrameOffsetInSeconds) to Kinesis' ApproximateArrivalTimestamp (p50 / p99);
  - CPU seconds per second of this process (decoding, the face models, search, Kinesis writes) per camera, with
    the baseline measured in the same run: the same cameras decoded and sampled alone (no face path).
A row "keeps up" when frames analysed reach 95% of the sampling rate on every camera.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3
import cv2
import numpy as np
from _common import cpu_seconds, write_video
from skimage import data

from tests.service_fixtures import free_port, wait_healthy
from tests.stream_fixtures import Camera

SIZE, FPS = (1280, 720), 30


def render(path: Path, seconds: int, analyzer) -> None:
    from tests.video_fixtures import face_crop

    eileen = face_crop(analyzer, data.astronaut(), 150)
    stranger = face_crop(analyzer, np.stack([data.camera()] * 3, axis=-1), 150)
    width = SIZE[0]
    texture = cv2.resize(np.stack([data.brick()] * 3, axis=-1), SIZE)
    rng = np.random.default_rng(0)

    def draw(i: int) -> np.ndarray:
        image = (texture * 0.6 + rng.normal(0, 3, texture.shape)).clip(0, 255).astype(np.uint8)
        x = 100 + (i * 3) % (width - 400)
        image[200:350, x:x + 150] = eileen
        if (i // (FPS * 3)) % 2:
            image[300:450, width - x - 150:width - x] = stranger
        return image

    write_video(path, seconds * FPS, FPS, "libx264", SIZE, draw, bit_rate=4_000_000,
                options={"x264-params": "slices=1:sliced-threads=0", "g": str(FPS), "bf": "0", "preset": "veryfast"})


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def decode_only(cameras: list[Camera], seconds: float, interval_ms: int) -> float:
    """CPU seconds per second per camera of decoding and sampling alone."""
    from facelens.video.live import CameraFeed

    stop = threading.Event()
    counts = [0] * len(cameras)

    def consume(i: int, camera: Camera) -> None:
        for frame in CameraFeed(f"c{i}", camera.url, interval_ms, 30, stop).frames():
            if frame is not None:
                counts[i] += 1

    threads = [threading.Thread(target=consume, args=(i, c), daemon=True) for i, c in enumerate(cameras)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    begin, wall = cpu_seconds(), time.monotonic()
    time.sleep(seconds)
    used = (cpu_seconds() - begin) / (time.monotonic() - wall)
    stop.set()
    for thread in threads:
        thread.join(15)
    return used / len(cameras)


def run(count: int, clip: Path, seconds: float, interval_ms: int, kinesis_url: str, root: Path) -> dict:
    from facelens.config import ServerSettings
    from facelens.service import build

    cameras = [Camera(clip).start() for _ in range(count)]
    try:
        baseline = decode_only(cameras, min(seconds, 8), interval_ms)
        env = {"FACELENS_CAMERAS": ";".join(f"cam{i}={c.url}" for i, c in enumerate(cameras)),
               "FACELENS_KINESIS_ENDPOINT_URL": kinesis_url, "FACELENS_KINESIS_ACCESS_KEY_ID": "moto",
               "FACELENS_KINESIS_SECRET_ACCESS_KEY": "moto", "FACELENS_KINESIS_REGION": "us-east-1",
               "FACELENS_STREAM_INTERVAL_MS": str(interval_ms), "FACELENS_THREADS": "1"}
        settings = ServerSettings.from_env(env, data_dir=root / f"data-{count}")
        kinesis = boto3.client("kinesis", endpoint_url=kinesis_url, region_name="us-east-1",
                               aws_access_key_id="moto", aws_secret_access_key="moto")
        stream = f"bench-{count}-{time.time_ns()}"
        kinesis.create_stream(StreamName=stream, ShardCount=1)
        with build(settings) as backend:
            assert backend.streams is not None
            backend.call("CreateCollection", {"CollectionId": "staff"})
            _, jpeg = cv2.imencode(".jpg", cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR))
            backend.call("IndexFaces", {"CollectionId": "staff", "Image": jpeg.tobytes()})
            backend.streams.start()
            for i in range(count):
                backend.call("CreateStreamProcessor", {
                    "Name": f"p{i}", "RoleArn": "arn:aws:iam::123456789012:role/r",
                    "Input": {"KinesisVideoStream": {
                        "Arn": f"arn:aws:kinesisvideo:us-east-1:123456789012:stream/cam{i}/1"}},
                    "Output": {"KinesisDataStream": {
                        "Arn": f"arn:aws:kinesis:us-east-1:123456789012:stream/{stream}"}},
                    "Settings": {"FaceSearch": {"CollectionId": "staff"}}})
                backend.call("StartStreamProcessor", {"Name": f"p{i}"})
            time.sleep(4)  # connect, warm up
            runners = backend.streams.running()
            before = {name: (r.analysed, r.feed.skipped if r.feed else 0) for name, r in runners.items()}
            begin, wall = cpu_seconds(), time.monotonic()
            time.sleep(seconds)
            elapsed = time.monotonic() - wall
            used = (cpu_seconds() - begin) / elapsed
            after = {name: (r.analysed, r.feed.skipped if r.feed else 0) for name, r in runners.items()}
            latencies = [x for r in runners.values() for x in list(r.latencies)[-2000:]]
            for i in range(count):
                backend.call("StopStreamProcessor", {"Name": f"p{i}"})
            time.sleep(2)
        shard = kinesis.describe_stream(StreamName=stream)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = kinesis.get_shard_iterator(StreamName=stream, ShardId=shard,
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        delays = []
        while True:
            got = kinesis.get_records(ShardIterator=iterator, Limit=1000)
            iterator = got["NextShardIterator"]
            for record in got["Records"]:
                video = json.loads(record["Data"])["InputInformation"]["KinesisVideo"]
                delays.append(record["ApproximateArrivalTimestamp"].timestamp()
                              - video["ServerTimestamp"] - video["FrameOffsetInSeconds"])
            if not got["Records"]:
                break
    finally:
        for camera in cameras:
            camera.kill()
    rates = [(after[n][0] - before[n][0]) / elapsed for n in after]
    skipped = [(after[n][1] - before[n][1]) for n in after]
    samples = [after[n][0] - before[n][0] + s for n, s in zip(after, skipped, strict=True)]
    return {"cameras": count, "fps": rates, "skipped": sum(skipped) / max(1, sum(samples)),
            "latency": (pct(latencies, 50), pct(latencies, 99)), "delay": (pct(delays, 50), pct(delays, 99)),
            "cpu": used / count, "baseline": baseline, "records": len(delays)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", default="1,2,4,6")
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--interval-ms", type=int, default=200)
    args = parser.parse_args()
    from facelens.pipeline import default_analyzer

    wanted = 1000 / args.interval_ms
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clip = root / "camera-720p.mp4"
        render(clip, 60, default_analyzer())
        port = free_port()
        moto = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p",
                                 str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_healthy(f"http://127.0.0.1:{port}/moto-api/", moto, 60)
            rows = [run(int(n), clip, args.seconds, args.interval_ms, f"http://127.0.0.1:{port}", root)
                    for n in args.cameras.split(",")]
        finally:
            moto.terminate()
    print(f"# streams: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{datetime.date.today()}, 720p30 H.264 over RTSP/TCP, sampling {args.interval_ms} ms "
          f"({wanted:g} frames/s wanted), {args.seconds:g} s per row")
    print("| cameras | frames/s per camera (min-max) | samples skipped | decode->record p50 / p99 | "
          "arrival->Kinesis p50 / p99 | CPU per camera (decode only) | ratio | keeps up |")
    print("|---:|---|---:|---|---|---|---:|---|")
    for row in rows:
        keeps = min(row["fps"]) >= 0.95 * wanted
        print(f"| {row['cameras']} | {statistics.mean(row['fps']):.2f} ({min(row['fps']):.2f}-{max(row['fps']):.2f})"
              f" | {100 * row['skipped']:.1f}% | {row['latency'][0] * 1000:.0f} / {row['latency'][1] * 1000:.0f} ms"
              f" | {row['delay'][0] * 1000:.0f} / {row['delay'][1] * 1000:.0f} ms | {100 * row['cpu']:.0f}% "
              f"({100 * row['baseline']:.0f}%) | {row['cpu'] / max(row['baseline'], 1e-9):.1f}x | "
              f"{'yes' if keeps else 'no'} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
