"""facelens.api.connections in process: a real uvicorn server (GuardedServer, small limits) in a thread with an
app whose one endpoint reads its body with app.read_body; raw sockets play the slow clients."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from facelens.api import connections
from facelens.api.app import read_body
from facelens.api.errors import RequestTimeoutException
from facelens.config import ConfigError, ConnectionSettings, ServerSettings

# upper bounds have 1.5 s of slack: the suite shares two cores with other tests
HEADER, BODY, CAP = 0.6, 0.8, 6


async def echo(request: Request) -> Response:
    try:
        return Response(await read_body(request, 1 << 20))
    except RequestTimeoutException as exc:
        return Response(exc.code, status_code=exc.status)


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[int, connections.ConnectionTable]]:
    limits = connections.Limits(HEADER, BODY, CAP, burst=2)
    listener, protocol = connections.guarded("127.0.0.1", 0, limits)
    config = uvicorn.Config(Starlette(routes=[Route("/", echo, methods=["POST"])]), http=protocol, ws="none",
                            lifespan="off", log_config=None, access_log=False)
    guarded = connections.GuardedServer(config, listener.table)
    thread = threading.Thread(target=guarded.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not guarded.started:
        time.sleep(0.01)
    yield listener.getsockname()[1], listener.table
    guarded.should_exit = True
    thread.join(10)


def connect(port: int, data: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(data)
    return sock


def closed_after(sock: socket.socket, trickle: bytes = b"", every: float = 0.2, limit: float = 5) -> float:
    """Seconds until the server closes `sock`, sending `trickle` every `every` seconds meanwhile."""
    started = time.monotonic()
    sock.settimeout(every)
    while time.monotonic() - started < limit:
        try:
            if not sock.recv(65536):
                return time.monotonic() - started
        except TimeoutError:
            try:
                sock.sendall(trickle)
            except OSError:
                return time.monotonic() - started
        except OSError:
            return time.monotonic() - started
    return float("inf")


def answer(sock: socket.socket, ending: bytes) -> bytes:
    data = b""
    while not data.endswith(ending) and (chunk := sock.recv(65536)):
        data += chunk
    return data


def request(body: bytes = b"hi") -> bytes:
    return b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def test_the_settings_parse_and_default() -> None:
    assert ServerSettings.from_env({}).connections == ConnectionSettings(10.0, 30.0, None)
    env = {"FACELENS_HEADER_TIMEOUT": "2.5", "FACELENS_BODY_TIMEOUT": "7", "FACELENS_MAX_CONNECTIONS": "100"}
    assert ServerSettings.from_env(env).connections == ConnectionSettings(2.5, 7.0, 100)
    with pytest.raises(ConfigError):
        ConnectionSettings.from_env({"FACELENS_HEADER_TIMEOUT": "0"})


def test_the_cap_leaves_a_reserve_below_the_fd_limit() -> None:
    assert connections.derive_cap(1024, 12, None) == 1024 - 12 - 64
    assert connections.derive_cap(256, 12, None) == 256 - 12 - 32
    assert connections.derive_cap(1024, 12, 100) == 100
    assert connections.derive_cap(1024, 12, 5000) == 948


def test_slow_headers_are_cut_at_the_deadline_from_the_connection_start(server) -> None:
    port, _ = server
    sock = connect(port, b"POST / HTTP/1.1\r\n")
    assert HEADER - 0.05 < closed_after(sock, trickle=b"X-A: b\r\n", every=0.1) < HEADER + 1.5


def test_an_idle_keep_alive_connection_gets_the_header_deadline_again(server) -> None:
    port, _ = server
    sock = connect(port, request())
    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert HEADER - 0.05 < closed_after(sock, trickle=b"X", every=0.1) < HEADER + 1.5


def test_a_stalled_body_is_answered_408_and_closed(server) -> None:
    port, _ = server
    sock = connect(port, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
    sock.settimeout(3)
    started = time.monotonic()
    answer = sock.recv(65536)
    while b"RequestTimeoutException" not in answer:  # the body may come in its own segment
        more = sock.recv(65536)
        if not more:
            break
        answer += more
    assert answer.startswith(b"HTTP/1.1 408") and b"RequestTimeoutException" in answer
    assert BODY - 0.05 < time.monotonic() - started < BODY + 1.5
    assert closed_after(sock) < 1.5


def test_at_the_cap_the_longest_waiting_connection_makes_room(server) -> None:
    port, table = server
    idle = [connect(port) for _ in range(CAP)]
    time.sleep(0.1)
    assert table.open == CAP
    fresh = connect(port, request(b"served"))
    assert answer(fresh, b"served").startswith(b"HTTP/1.1 200")  # a client that sends its request at once is served
    assert closed_after(idle[0], limit=1.5) < 1.5  # the oldest waiting one was closed for it
    assert table.open <= CAP
    for sock in [*idle, fresh]:
        sock.close()


class _Waiting:
    """A waiting connection as the table sees it: when it began waiting, and whether bytes wait unread."""

    def __init__(self, since: float, unread: bool) -> None:
        self.since, self.unread = since, unread

    def has_unread(self) -> bool:
        return self.unread


def test_eviction_passes_over_a_connection_whose_request_has_arrived_unread() -> None:
    table = connections.ConnectionTable(connections.Limits(HEADER, BODY, CAP, burst=2))
    arrived, silent, stalled = _Waiting(1.0, unread=True), _Waiting(2.0, unread=False), _Waiting(1.5, unread=False)
    table.waiting[connections.Phase.FRESH] = {arrived: None, silent: None}
    table.waiting[connections.Phase.BODY] = {stalled: None}
    assert table.victim() is stalled  # the oldest waiting one with nothing unread
    table.waiting[connections.Phase.BODY] = {}
    assert table.victim() is silent
    table.waiting[connections.Phase.FRESH] = {arrived: None}
    assert table.victim() is arrived  # when every candidate has bytes waiting, the oldest still goes


def test_accepted_connections_send_without_nagle(server: tuple[int, connections.ConnectionTable]) -> None:
    """Every accepted connection has TCP_NODELAY: a response is written as headers then body, and with Nagle on, a
    client's delayed ACK held the body back 40 ms (every boto3 call took >= 44 ms; docs/benchmarks.md)."""
    port, table = server
    sock = connect(port)  # no bytes sent: the server holds it as waiting for its headers
    deadline = time.monotonic() + 5
    while not table.waiting[connections.Phase.FRESH] and time.monotonic() < deadline:
        time.sleep(0.01)
    accepted = [conn.sock for conn in table.waiting[connections.Phase.FRESH]]
    assert accepted and all(conn is not None and conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
                            for conn in accepted)
    sock.close()
