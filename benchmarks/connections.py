"""Idle and slow connections against `facelens serve` with a small file-descriptor limit.

    .venv/bin/python benchmarks/connections.py [--connections 5000] [--seconds 60] [--nofile 1024]

Starts `facelens serve` with RLIMIT_NOFILE (soft and hard) = --nofile, then
  1. baseline: GET /health and a signed DetectFaces (fresh TCP connection each), one pair every 0.5 s, no attack;
  2. timeouts: a few slowloris, stalled-body and idle sockets alone, to measure when the server closes each;
  3. attack: --connections sockets from a separate process (a third each: slowloris sending a header line every
     2 s, signed headers then a body trickling a byte every 2 s, idle), each reconnecting as soon as it is
     closed, held for --seconds while the same probes run.
Reports probe latency (p50 / p99 / max, failures = error, non-200 or slower than 1 s) with the ratio attack /
baseline, the server's log growth, RSS and open descriptors, and how long the server let each kind of stalled
socket live. `run()` is also what tests/integration/test_connections.py runs, smaller.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

KEY_ID, SECRET = "FLKBENCHMARK00000001", "benchmark-secret"
MODES = ("slowloris", "stalled-body", "idle")
PACE = 2.0  # seconds between the slow sockets' bytes
SLOW = 1.0  # a probe slower than this is a failure
REQUEST_LINE = re.compile(r"facelens\.api: [0-9a-f-]{36} ")  # the one line the app logs per request


def signed(url: str, operation: str, body: bytes) -> dict[str, str]:
    """SigV4 headers of a Rekognition request with this body (botocore's signer)."""
    headers = {"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": f"RekognitionService.{operation}"}
    request = AWSRequest(method="POST", url=url.rstrip("/") + "/", data=body, headers=headers)
    SigV4Auth(Credentials(KEY_ID, SECRET), "rekognition", "us-east-1").add_auth(request)
    return dict(request.headers.items())


def face_image() -> bytes:
    """scikit-image's astronaut as JPEG (one face)."""
    from PIL import Image
    from skimage import data

    buffer = io.BytesIO()
    Image.fromarray(data.astronaut()).save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


# -- the attacker (its own process: python benchmarks/connections.py --attacker JSON)
async def _speak(mode: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, opening: bytes,
                 stop_at: float) -> bool:
    """Play one socket of `mode` until the server closes it (True) or the attack ends (False)."""
    loop = asyncio.get_running_loop()
    try:
        if mode == "slowloris":
            writer.write(b"POST / HTTP/1.1\r\nHost: x\r\n")
        elif mode == "stalled-body":
            writer.write(opening)
        while (left := stop_at - loop.time()) > 0:
            try:
                data = await asyncio.wait_for(reader.read(65536), min(PACE, left))
            except TimeoutError:
                if mode == "slowloris":
                    writer.write(b"X-Slow: 1\r\n")
                elif mode == "stalled-body":
                    writer.write(b"A")
                continue
            if not data:
                return True
    except OSError:
        return True
    return False


async def _hold(mode: str, host: str, port: int, opening: bytes, stop_at: float, stats: dict[str, Any]) -> None:
    loop = asyncio.get_running_loop()
    while loop.time() < stop_at:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
        except (OSError, TimeoutError):
            stats["connect_failures"] += 1
            await asyncio.sleep(0.1)
            continue
        opened, stats["open"] = loop.time(), stats["open"] + 1
        stats["opened"] += 1
        try:
            closed = await _speak(mode, reader, writer, opening, stop_at)
        finally:
            stats["open"] -= 1
            writer.transport.abort()
        if closed:
            stats["lifetimes"][mode].append(loop.time() - opened)


async def attack(host: str, port: int, counts: dict[str, int], seconds: float, opening: bytes) -> dict[str, Any]:
    """Hold counts[mode] sockets of each mode for `seconds`, reconnecting each one the server closes."""
    loop = asyncio.get_running_loop()
    stats: dict[str, Any] = {"open": 0, "opened": 0, "connect_failures": 0, "lifetimes": {m: [] for m in MODES},
                             "open_samples": []}
    stop_at = loop.time() + seconds

    async def sample() -> None:
        while loop.time() < stop_at:
            stats["open_samples"].append(stats["open"])
            await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(_hold(mode, host, port, opening, stop_at, stats))
             for mode, count in counts.items() for _ in range(count)]
    await asyncio.gather(sample(), *tasks)
    return stats


def _attacker_main(spec: str) -> int:
    args = json.loads(spec)
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    stats = asyncio.run(attack(args["host"], args["port"], args["counts"], args["seconds"],
                               args["opening"].encode("latin-1")))
    print(json.dumps(stats))
    return 0


def run_attacker(url: str, counts: dict[str, int], seconds: float) -> subprocess.Popen:
    """The attacker process; its stdout is one JSON line of stats when it ends."""
    host, port = url.removeprefix("http://").split(":")
    body_start = b'{"Image": {"Bytes": "'
    headers = signed(url, "DetectFaces", body_start + b"A" * 65536)  # valid header checks; the body never ends
    lines = [f"{k}: {v}" for k, v in headers.items() if k.lower() != "content-length"]
    opening = ("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n" + "\r\n".join(lines) + "\r\n\r\n")
    spec = json.dumps({"host": host, "port": int(port), "counts": counts, "seconds": seconds,
                       "opening": opening + body_start.decode()})
    return subprocess.Popen([sys.executable, __file__, "--attacker", spec], stdout=subprocess.PIPE)


# -- the server and the probes
def start_server(data_dir: Path, nofile: int, env: dict[str, str]) -> tuple[subprocess.Popen, str, Path]:
    """`facelens serve` with RLIMIT_NOFILE = nofile (soft and hard); (process, url, log) once /health answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = data_dir / "server.log"
    full_env = {**os.environ, "FACELENS_ACCESS_KEYS": f"{KEY_ID}:{SECRET}", "FACELENS_THREADS": "1", **env}

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "facelens"), "serve", "--port", str(port), "--data-dir",
         str(data_dir / "data")], env=full_env, stdout=subprocess.DEVNULL, stderr=log.open("wb"), preexec_fn=limit)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return process, url, log
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"server did not become healthy: {log.read_text(errors='replace')[-2000:]}")


def proc_status(pid: int) -> tuple[float, int]:
    """(RSS MiB, open descriptors) of a process."""
    rss = next((int(line.split()[1]) / 1024 for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                if line.startswith("VmRSS:")), float("nan"))
    try:
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        fds = -1
    return rss, fds


@dataclass
class Probes:
    """Latencies (s) of the probes of one phase; a failure is an error, a non-200 or an answer over SLOW."""

    latency: dict[str, list[float]] = field(default_factory=lambda: {"health": [], "signed": []})
    failures: dict[str, int] = field(default_factory=lambda: {"health": 0, "signed": 0})
    errors: list[str] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)


def probe(url: str, pid: int, seconds: float, operation: str, body: bytes, slow: float = SLOW) -> Probes:
    """A /health and a signed `operation`, each on a fresh connection, every 0.5 s for `seconds`."""
    result = Probes()
    stop = time.monotonic() + seconds
    while (tick := time.monotonic()) < stop:
        for kind in ("health", "signed"):
            started = time.perf_counter()
            try:
                if kind == "health":
                    response = httpx.get(f"{url}/health", timeout=5)
                else:
                    response = httpx.post(url + "/", content=body, headers=signed(url, operation, body), timeout=5)
                ok = response.status_code == 200
                if not ok:
                    result.errors.append(f"{kind}: HTTP {response.status_code} {response.text[:200]}")
            except httpx.HTTPError as exc:
                ok = False
                result.errors.append(f"{kind}: {type(exc).__name__} {exc}")
            elapsed = time.perf_counter() - started
            result.latency[kind].append(elapsed)
            result.failures[kind] += (not ok) or elapsed > slow
        rss, fds = proc_status(pid)
        result.rss.append(rss)
        result.fds.append(fds)
        time.sleep(max(0.0, tick + 0.5 - time.monotonic()))
    return result


def finish(attacker: subprocess.Popen) -> dict[str, Any]:
    out, _ = attacker.communicate(timeout=120)
    return json.loads(out)


def run(nofile: int, connections: int, seconds: float, header_timeout: float, body_timeout: float,
        operation: str = "DetectFaces", baseline_seconds: float = 10.0, timeout_check: bool = True,
        env: dict[str, str] | None = None, slow: float = SLOW) -> dict[str, Any]:
    """The three phases against a fresh server; a dict of everything measured (a probe slower than `slow`
    seconds counts as a failure)."""
    body = (json.dumps({"Image": {"Bytes": base64.b64encode(face_image()).decode()}}).encode()
            if operation == "DetectFaces" else b"{}")
    settings = {"FACELENS_HEADER_TIMEOUT": str(header_timeout), "FACELENS_BODY_TIMEOUT": str(body_timeout),
                **(env or {})}
    with tempfile.TemporaryDirectory() as tmp:
        process, url, log = start_server(Path(tmp), nofile, settings)
        try:
            baseline = probe(url, process.pid, baseline_seconds, operation, body, slow)
            timeouts = None
            if timeout_check:
                attacker = run_attacker(url, dict.fromkeys(MODES, 10), max(header_timeout, body_timeout) + 3)
                finish_at = time.monotonic() + max(header_timeout, body_timeout) + 3
                while time.monotonic() < finish_at and attacker.poll() is None:
                    time.sleep(0.2)
                timeouts = finish(attacker)
            log_before = log.stat().st_size
            counts = {mode: connections // 3 + (i < connections % 3) for i, mode in enumerate(MODES)}
            attacker = run_attacker(url, counts, seconds)
            time.sleep(min(2.0, seconds / 5))  # let the attacker open its sockets
            attacked = probe(url, process.pid, seconds - min(2.0, seconds / 5), operation, body, slow)
            flood = finish(attacker)
            with log.open("rb") as handle:
                handle.seek(log_before)
                grown = handle.read().decode(errors="replace").splitlines()
            log_growth = log.stat().st_size - log_before
            request_lines = sum(bool(REQUEST_LINE.search(line)) for line in grown)
            other_lines = [line for line in grown if not REQUEST_LINE.search(line)]
            alive = process.poll() is None
        finally:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                process.kill()
        return {"baseline": baseline, "attack": attacked, "timeouts": timeouts, "flood": flood,
                "log_growth": log_growth, "request_lines": request_lines,
                "other_lines": other_lines, "alive": alive, "log_tail": log.read_text(errors="replace")[-3000:],
                "nofile": nofile, "connections": connections, "seconds": seconds,
                "header_timeout": header_timeout, "body_timeout": body_timeout, "operation": operation}


def _ms(values: list[float], q: float | None = None) -> float:
    if not values:
        return float("nan")
    return 1000 * (max(values) if q is None else float(np.percentile(values, q)))


def report(result: dict[str, Any]) -> str:
    """The results as markdown tables."""
    base, hit = result["baseline"], result["attack"]
    rows = [f"{result['connections']:,} attacking sockets for {result['seconds']:g} s against RLIMIT_NOFILE "
            f"{result['nofile']:,}; header timeout {result['header_timeout']:g} s, body timeout "
            f"{result['body_timeout']:g} s; probes every 0.5 s on fresh connections; {os.cpu_count()} cores "
            "shared by server, attacker and probes\n",
            "| probe | phase | probes | failures | p50 ms | p99 ms | max ms | p99 attack / baseline |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for kind, name in (("health", "GET /health"), ("signed", f"signed {result['operation']}")):
        for phase, probes in (("no attack", base), ("attack", hit)):
            lat = probes.latency[kind]
            ratio = _ms(lat, 99) / _ms(base.latency[kind], 99)
            rows.append(f"| {name} | {phase} | {len(lat)} | {probes.failures[kind]} | {_ms(lat, 50):.1f} | "
                        f"{_ms(lat, 99):.1f} | {_ms(lat):.1f} | {ratio:.2f} |")
    flood = result["flood"]
    rows += ["", "| server | no attack | attack (max) |", "|---|---:|---:|",
             f"| RSS MiB | {max(base.rss):.0f} | {max(hit.rss):.0f} |",
             f"| open descriptors | {max(base.fds)} | {max(hit.fds)} |",
             f"| log growth during the attack, bytes | | {result['log_growth']:,} |",
             f"| of which request lines (one per request with headers) | | {result['request_lines']:,} |",
             f"| other log lines | | {len(result['other_lines']):,} |",
             "", f"Attacker: {flood['opened']:,} connections opened ({flood['opened'] / result['seconds']:,.0f}/s), "
             f"{flood['connect_failures']:,} connect failures, sockets open at its side (connected or queued): "
             f"median {int(np.median(flood['open_samples'] or [0])):,}, max {max(flood['open_samples'] or [0]):,}",
             "", "| stalled socket | alone: closed after, s (max) | under attack: closed | p50 s | max s |",
             "|---|---:|---:|---:|---:|"]
    alone = result["timeouts"]["lifetimes"] if result["timeouts"] else {}
    for mode in MODES:
        lives = flood["lifetimes"][mode]
        solo = alone.get(mode) or []
        nan = float("nan")
        rows.append(f"| {mode} | {max(solo) if solo else nan:.2f} ({len(solo)} closed) | {len(lives):,} | "
                    f"{np.median(lives) if lives else nan:.2f} | {max(lives) if lives else nan:.2f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--attacker"]:
        return _attacker_main(argv[1])
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--connections", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--nofile", type=int, default=1024)
    parser.add_argument("--header-timeout", type=float, default=10)
    parser.add_argument("--body-timeout", type=float, default=30)
    parser.add_argument("--operation", default="DetectFaces")
    args = parser.parse_args(argv)
    result = run(args.nofile, args.connections, args.seconds, args.header_timeout, args.body_timeout,
                 args.operation)
    print(report(result))
    if not result["alive"]:
        print("\nThe server died:\n" + result["log_tail"])
    errors = result["attack"].errors
    if errors:
        print(f"\nFirst probe errors under attack ({len(errors)}):\n" + "\n".join(errors[:5]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
