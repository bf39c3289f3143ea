"""The README's Quick start and its boto3 / AWS CLI examples, run as a new user runs them: `make serve` in a
checkout with no `data/` and no `~/.aws`, then the section's shell and Python blocks, in order, in one shell, from
the checkout. The checkout is this one's Makefile and `.venv` (so `make serve` reinstalls nothing); the only
edit to the blocks is the port, when 8080 is taken on the machine running the suite."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import encode
from tests.service_fixtures import free_port, wait_healthy

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)


def section(title: str) -> str:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def blocks(title: str) -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in FENCE.finditer(section(title))]


def port_free(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_quick_start_is_two_commands() -> None:
    assert blocks("Quick start") == [("sh", "make serve\nmake test\n")]


@pytest.mark.long
def test_the_readme_examples_run_as_written(tmp_path: Path, astronaut) -> None:
    checkout, home = tmp_path / "checkout", tmp_path / "home"
    checkout.mkdir()
    home.mkdir()
    for name in ("Makefile", "pyproject.toml", ".venv"):
        (checkout / name).symlink_to(ROOT / name)
    (checkout / "photo.jpg").write_bytes(encode(astronaut))
    port = 8080 if port_free(8080) else free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AWS_", "FACELENS_"))}
    env.update(HOME=str(home), FACELENS_PORT=str(port), FACELENS_THREADS="1",
               PATH=f"{checkout / '.venv' / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(["make", "serve"], cwd=checkout, env=env, stdout=log, stderr=subprocess.STDOUT,
                             start_new_session=True)
    try:
        wait_healthy(f"http://127.0.0.1:{port}/health", serve)
        assert (checkout / "data" / "credentials").exists()
        shell, python = [], []
        for language, code in blocks("Use it from boto3 and the AWS CLI"):
            code = code.replace("127.0.0.1:8080", f"127.0.0.1:{port}")
            (shell if language == "sh" else python).append(code)
        assert len(shell) == 1 and len(python) == 2
        script = ("set -euo pipefail\n" + "\n".join(shell) + f"\n{sys.executable} - <<'PY'\n" + "\n".join(python)
                  + "PY\n")
        run = subprocess.run(["bash", "-c", script], cwd=checkout, env=env, capture_output=True, text=True,
                             timeout=300)
        assert run.returncode == 0, run.stderr[-3000:]
        assert '"FaceDetails"' in run.stdout and '"AgeRange"' in run.stdout  # the AWS CLI's JSON
        printed = run.stdout.splitlines()
        assert "'Similarity'" in printed[-2] and "'ExternalImageId': 'alice.jpg'" in printed[-1]
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        serve.wait(60)
        log.close()
