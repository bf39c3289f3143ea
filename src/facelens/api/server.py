"""`facelens serve`: the ASGI app under uvicorn.

Graceful shutdown is uvicorn's: on SIGTERM or SIGINT it stops accepting connections, lets requests in flight
finish (up to `shutdown_timeout` seconds), then runs the app's shutdown, which drains the worker pools.
Models are loaded during startup, before the socket accepts its first request.

Parallelism: the service runs `workers` requests at once, each model session with `threads` onnxruntime threads
(default 1; the models are built from `settings.models`, whose `threads` is the same number). On CPU, one thread
per request with as many requests as cores gave about 1.5x the throughput of sessions that each use every core
(benchmarks/service.py, docs/benchmarks.md).

Connections: the listening socket and h11 protocol of `facelens.api.connections` bound the open client sockets
below the file-descriptor limit (raised to the hard limit at start) and cut requests whose headers or body do
not arrive in time (FACELENS_HEADER_TIMEOUT, FACELENS_BODY_TIMEOUT, FACELENS_MAX_CONNECTIONS).
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from facelens.api import connections
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
    fd_limit = connections.raise_fd_limit()
    app = create_app(settings, build(settings))
    wanted = settings.connections
    cap = connections.derive_cap(fd_limit, connections.open_descriptors(), wanted.max_connections)
    if wanted.max_connections is not None and cap < wanted.max_connections:
        log.warning("FACELENS_MAX_CONNECTIONS %d lowered to %d: the file-descriptor limit is %d",
                    wanted.max_connections, cap, fd_limit)
    limits = connections.Limits(wanted.header_timeout, wanted.body_timeout, cap, burst=max(1, min(64, cap // 16)))
    listener, protocol = connections.guarded(settings.host, settings.port, limits)
    config = uvicorn.Config(
        app,
        http=protocol,
        ws="none",
        backlog=65535,  # the kernel lowers it to net.core.somaxconn; accepts per iteration are limits.burst
        lifespan="on",
        access_log=False,
        server_header=False,
        log_config=None,
        timeout_graceful_shutdown=settings.shutdown_timeout,
    )
    server = connections.GuardedServer(config, listener.table)
    log.info("FaceLens on http://%s:%d (data directory %s, %d inference workers x %d threads, queue %d)",
             settings.host, settings.port, settings.data_dir, settings.workers, settings.threads, settings.queue)
    log.info("connections: at most %d open (fd limit %d), headers within %gs, bodies within %gs", cap, fd_limit,
             limits.header_timeout, limits.body_timeout)
    server.run(sockets=[listener])
    return 0 if server.started else 1
