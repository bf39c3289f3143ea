"""Milvus Lite's gRPC server (the `milvus-lite` package), reached by pymilvus exactly like a Milvus cluster."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service_fixtures import free_port


def start_milvus(data_dir: Path, timeout: float = 60.0) -> tuple[str, subprocess.Popen]:
    """(`milvus://127.0.0.1:port`, process) of a Milvus Lite server on a free port, once it accepts connections."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "milvus_lite", "server", "--data-dir", str(data_dir),
                                "--host", "127.0.0.1", "--port", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"milvus-lite server exited with {process.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return f"milvus://127.0.0.1:{port}", process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise TimeoutError("milvus-lite server did not start")


@pytest.fixture(scope="session")
def milvus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url, process = start_milvus(tmp_path_factory.mktemp("milvus"))
    yield url
    process.terminate()
    process.wait(10)
