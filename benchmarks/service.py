"""DetectFaces through the HTTP service with boto3 vs the in-process pipeline, and server memory over time.

    .venv/bin/python benchmarks/service.py [--requests 400] [--levels 1,4,16] [--memory-requests 2000]

Starts `facelens serve` on a free port (access key from the environment, models warmed before it listens), then
for each concurrency level C runs the same fixed number of DetectFaces requests
  * in process: C threads calling `facelens.domain.faces.detect(analyzer, image_bytes)` directly, and
  * through the service: C threads, each with its own `boto3.client("rekognition", endpoint_url=...)`,
on the same images (JPEG bytes, rotated), in the same run. Reports requests/s, p50/p99 latency and the ratio
service/in-process. Both sides use the same model settings, those `facelens serve` reads from this environment
(`ServerSettings.from_env().models`: FACELENS_THREADS, default 1, the server's default; the in-process analyzer
is built from them, and the server is started with that FACELENS_THREADS). Then sends
--memory-requests more requests at C=4 and samples the server's RSS. Client, server and baseline share the
machine's cores; the table header says how many there are.
"""

from __future__ import annotations

import argparse
import io
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import boto3
import httpx
import numpy as np
from _common import memory_mib
from botocore.config import Config
from PIL import Image

KEY_ID, SECRET = "FLKBENCHMARK00000001", "benchmark-secret"


def test_images() -> list[bytes]:
    """Astronaut (512x512), cameraman (512x512) and astronaut at 1024x1024, as JPEG bytes."""
    from skimage import data

    astronaut = data.astronaut()
    pixels = [astronaut, np.stack([data.camera()] * 3, axis=-1), np.kron(astronaut, np.ones((2, 2, 1), np.uint8))]
    encoded = []
    for image in pixels:
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


def run_load(call: Callable[[int], None], concurrency: int, total: int) -> tuple[float, list[float]]:
    """`total` calls spread over `concurrency` threads: (wall seconds, per-call latencies in seconds)."""
    latencies: list[float] = []
    counter = iter(range(total))
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker() -> None:
        while True:
            with lock:
                index = next(counter, None)
            if index is None:
                return
            started = time.perf_counter()
            try:
                call(index)
            except BaseException as exc:
                errors.append(exc)
                return
            latencies.append(time.perf_counter() - started)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return time.perf_counter() - started, latencies


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) * 1000


def memory_check(pid: int, call: Callable[[int], None], total: int) -> None:
    """Send `total` requests from 4 clients, sampling the server's RSS 8 times."""
    samples = [(0, memory_mib(pid)[0])]
    step = max(1, total // 8)
    for done in range(step, total + 1, step):
        run_load(call, 4, step)
        samples.append((done, memory_mib(pid)[0]))
    print(f"\nServer RSS over {total} more requests (4 clients), MiB:\n")
    print("| requests | " + " | ".join(str(n) for n, _ in samples) + " |")
    print("|---|" + "---:|" * len(samples))
    print("| RSS MiB | " + " | ".join(f"{m:.0f}" for _, m in samples) + " |")
    growth = samples[-1][1] - samples[1][1]
    print(f"\nGrowth after the first {step} requests: {growth:+.1f} MiB "
          f"(median {statistics.median(m for _, m in samples):.0f} MiB)")


def start_server(data_dir: Path, threads: int) -> tuple[subprocess.Popen, str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FACELENS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}", "FACELENS_THREADS": str(threads)}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "facelens"), "serve", "--port", str(port), "--data-dir", str(data_dir)],
        env=env, stdout=subprocess.DEVNULL, stderr=(data_dir / "server.log").open("wb"),
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("server did not become healthy")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=400, help="requests per concurrency level (default 400)")
    parser.add_argument("--levels", default="1,4,16", help="client concurrency levels (default 1,4,16)")
    parser.add_argument("--memory-requests", type=int, default=2000, help="requests for the memory check")
    args = parser.parse_args(argv)
    levels = [int(level) for level in args.levels.split(",")]
    from facelens.config import ServerSettings
    from facelens.domain import faces
    from facelens.pipeline import FaceAnalyzer

    # Same model settings on both sides: what `facelens serve` reads from this environment (by default
    # FACELENS_THREADS=1 and one worker per core); the server gets the same FACELENS_THREADS explicitly.
    settings = ServerSettings.from_env()
    threads = settings.threads
    analyzer = FaceAnalyzer(settings.models)
    analyzer.warmup()
    images = test_images()
    with tempfile.TemporaryDirectory() as tmp:
        process, url = start_server(Path(tmp), threads)
        try:
            local = threading.local()

            def client():
                if not hasattr(local, "client"):
                    local.client = boto3.client(
                        "rekognition", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY_ID,
                        aws_secret_access_key=SECRET,
                        config=Config(retries={"max_attempts": 10, "mode": "standard"}, max_pool_connections=4),
                    )
                return local.client

            def service_call(i: int) -> None:
                client().detect_faces(Image={"Bytes": images[i % len(images)]})

            def local_call(i: int) -> None:
                faces.detect(analyzer, images[i % len(images)])

            run_load(local_call, 2, 30)
            run_load(service_call, 2, 30)
            rows = []
            for level in levels:
                local_wall, local_lat = run_load(local_call, level, args.requests)
                service_wall, service_lat = run_load(service_call, level, args.requests)
                rows.append((level, args.requests / local_wall, percentile(local_lat, 50), percentile(local_lat, 99),
                             args.requests / service_wall, percentile(service_lat, 50), percentile(service_lat, 99)))

            print(f"\nDetectFaces, {args.requests} requests per level, {len(images)} JPEG images rotated "
                  f"(512x512, 512x512, 1024x1024); {os.cpu_count()} cores shared by clients, server and baseline; "
                  f"FACELENS_THREADS={threads} on both sides\n")
            print("| clients | in-process req/s | p50 ms | p99 ms | service req/s | p50 ms | p99 ms "
                  "| service / in-process |")
            print("|---:|---:|---:|---:|---:|---:|---:|---:|")
            for level, lr, l50, l99, sr, s50, s99 in rows:
                print(f"| {level} | {lr:.1f} | {l50:.1f} | {l99:.1f} | {sr:.1f} | {s50:.1f} | {s99:.1f} | "
                      f"{sr / lr:.2f} |")

            if args.memory_requests > 0:
                memory_check(process.pid, service_call, args.memory_requests)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
    return 0


if __name__ == "__main__":
    sys.exit(main())
