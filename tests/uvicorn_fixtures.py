"""The FaceLens app under a real uvicorn in this process (for tests that call it with boto3 but pass their own
backend, built once per module, instead of starting `facelens serve`)."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import uvicorn

from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.service import Backend
from tests.service_fixtures import KEY_ID, SECRET, free_port


def npm_env() -> dict[str, str]:
    """No settings but where the npm tarballs are, when a developer has them elsewhere than `make install` puts them."""
    return {key: os.environ[key] for key in ("FACELENS_NPM_DIR",) if key in os.environ}


@contextlib.contextmanager
def serving(settings: ServerSettings, backend: Backend) -> Iterator[str]:
    """`create_app(settings, backend)` with the one key KEY_ID/SECRET, served on 127.0.0.1 by uvicorn in a thread;
    yields its URL once it accepts connections, and stops it (not the backend) on exit."""
    port = free_port()
    config = uvicorn.Config(create_app(settings, backend, keys={KEY_ID: SECRET}), host="127.0.0.1", port=port,
                            lifespan="on", log_config=None, access_log=False, ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
