"""`facelens serve`: the ASGI app under uvicorn.

Graceful shutdown is uvicorn's: on SIGTERM or SIGINT it stops accepting connections, lets requests in flight
finish (up to `shutdown_timeout` seconds), then runs the app's shutdown, which drains the worker pools.
Models are loaded during startup, before the socket accepts its first request.

Parallelism: the service runs `workers` requests at once, each model session with `threads` onnxruntime threads
(default 1; the models are built from `settings.models`, whose `threads` is the same number). On CPU, one thread
per request with as many requests as cores gave about 1.5x the throughput of sessions that each use every core
(benchmarks/service.py, docs/benchmarks.md).
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from facelens.api.app import create_app
from facelens.config import ServerSettings
from facelens.service import build

log = logging.getLogger("facelens.api")


def configure_logging(level: int = logging.INFO) -> None:
    """One plain format for FaceLens and uvicorn (no access log: the app logs each request itself)."""
    logging.basicConfig(level=level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def serve(settings: ServerSettings) -> int:
    """Run the service until SIGTERM/SIGINT; returns a process exit status."""
    configure_logging()
    app = create_app(settings, build(settings))
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        lifespan="on",
        access_log=False,
        server_header=False,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = uvicorn.Server(config)
    log.info("FaceLens on http://%s:%d (data directory %s, %d inference workers x %d threads, queue %d)", settings.host,
             settings.port, settings.data_dir, settings.workers, settings.threads, settings.queue)
    server.run()
    return 0 if server.started else 1
