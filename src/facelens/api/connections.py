"""Connection limits for `facelens serve`: header and body deadlines and a cap on open client sockets.

Invariants (asyncio's selector event loop, uvicorn's h11 protocol):
* At most `Limits.cap` accepted client sockets are open at once, counted from accept() to close(), so accept()
  never meets EMFILE while the process's other descriptors stay within the reserve (`derive_cap`). At the cap,
  accepting one more first closes, at once, the connection that has waited longest for its request's headers or
  body, passing over any with bytes unread in its socket (then the oldest idle keep-alive one); when every
  connection is running a request, the new one is closed unanswered ("shed").
  A connection running a request is never cut.
* A request's headers must be whole `header_timeout` seconds after its connection opened or went idle after a
  response, however slowly bytes trickle in; else the connection is closed.
* A request's body must be whole `body_timeout` seconds after its headers: the app answers 408
  (`read_body`, which reads the deadline with `body_deadline(scope)`), and a connection still sending its body
  `BODY_GRACE` seconds later is closed regardless.
* A response sent before its request's body was whole closes the connection (the rest is never read).
* At most `Limits.burst` connections are accepted per event-loop iteration, so a connection that sends its
  request at once is read long before enough newer connections arrive to make it the oldest.
What was cut is counted and logged at most once every `REPORT_EVERY` seconds, asyncio's accept errors included,
so an attack cannot flood the log.
"""

from __future__ import annotations

import asyncio
import enum
import heapq
import itertools
import logging
import os
import resource
import socket
from collections import Counter
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger("facelens.api")
BODY_DEADLINE = "facelens.body_deadline"  # scope["extensions"] key: loop time by which the body must be whole
BODY_GRACE = 1.0
REPORT_EVERY = 10.0
PEEKS = 8  # waiting connections looked at for unread bytes before one is cut
ACCEPT_ERROR = "socket.accept() out of system resource"


@dataclass(frozen=True)
class Limits:
    """header_timeout, body_timeout in seconds; cap: open client sockets; burst: accepts per loop iteration."""

    header_timeout: float
    body_timeout: float
    cap: int
    burst: int


def raise_fd_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one where allowed; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft == resource.RLIM_INFINITY or soft >= target:
        return soft if soft != resource.RLIM_INFINITY else 1 << 20
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        return target
    except (ValueError, OSError):
        return soft


def open_descriptors() -> int:
    """Descriptors this process has open now (64 where /proc is missing)."""
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # less listdir's own
    except OSError:
        return 64


def derive_cap(fd_limit: int, in_use: int, requested: int | None) -> int:
    """Client sockets allowed: the fd limit less what is open now and a reserve for the store, models, logs and
    S3 sockets (1/16 of the limit, at least 32); `requested` (FACELENS_MAX_CONNECTIONS) only lowers it."""
    most = max(1, fd_limit - in_use - max(32, fd_limit // 16))
    return most if requested is None else max(1, min(requested, most))


def body_deadline(scope: Any) -> float | None:
    """The loop time by which this request's body must be whole (None outside `facelens serve`)."""
    return scope.get("extensions", {}).get(BODY_DEADLINE)


class Phase(enum.Enum):
    NEW = "new"
    FRESH = "awaiting first headers"
    IDLE = "awaiting headers after a response"
    BODY = "reading body"
    BUSY = "running"
    CLOSED = "closed"


class ConnectionTable:
    """The open client sockets and the waiting connections by phase, oldest first (dicts keep insertion order)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.open = 0  # accepted sockets not yet closed
        self.pending: dict[int, TrackedSocket] = {}  # fd -> accepted socket whose protocol is not made yet
        self.waiting: dict[Phase, dict[GuardedH11Protocol, None]] = {p: {} for p in (Phase.FRESH, Phase.IDLE,
                                                                                      Phase.BODY)}
        self.counts: Counter[str] = Counter()
        self.burst_left = limits.burst

    def move(self, conn: GuardedH11Protocol, phase: Phase) -> None:
        self.waiting.get(conn.phase, {}).pop(conn, None)
        conn.phase = phase
        if phase in self.waiting:
            self.waiting[phase][conn] = None

    def victim(self) -> GuardedH11Protocol | None:
        """The connection that has waited longest for headers or body, else the oldest idle one. Of the
        `PEEKS` oldest waiting ones, any with bytes unread in its socket is passed over: a client whose request
        has arrived but not been read yet (the loop was busy) is not cut for an attacker's silent socket."""
        waiting = heapq.merge(self.waiting[Phase.FRESH], self.waiting[Phase.BODY], key=lambda conn: conn.since)
        first: GuardedH11Protocol | None = None
        for conn in itertools.islice(waiting, PEEKS):  # each queue is in `since` order: merged, oldest first
            first = first or conn
            if not conn.has_unread():
                return conn
        if first is not None:
            return first
        return next(iter(self.waiting[Phase.IDLE]), None)

    def make_room(self) -> bool:
        """Close connections until a socket can be accepted within the cap; False if none can be closed."""
        while self.open >= self.limits.cap:
            conn = self.victim()
            if conn is None:
                return False
            self.counts["evicted"] += 1
            conn.evict()
        return True

    def reset_burst(self) -> None:
        self.burst_left = self.limits.burst

    def exception_handler(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        """asyncio's handler, except that accept() running out of descriptors is only counted."""
        if context.get("message") == ACCEPT_ERROR:
            self.counts["accept() out of descriptors"] += 1
            return
        loop.default_exception_handler(context)

    def report(self, loop: asyncio.AbstractEventLoop) -> None:
        """Log what was cut since the last report (nothing when nothing was); runs every REPORT_EVERY s."""
        if self.counts:
            cut = ", ".join(f"{count} {what}" for what, count in sorted(self.counts.items()))
            log.warning("connections in the last %gs: %s (open %d of %d)", REPORT_EVERY, cut, self.open,
                        self.limits.cap)
            self.counts.clear()
        loop.call_later(REPORT_EVERY, self.report, loop)


class TrackedSocket(socket.socket):
    """An accepted client socket that leaves its table's count when closed (once)."""

    table: ConnectionTable | None = None

    def close(self) -> None:
        table, self.table = self.table, None
        if table is not None:
            table.open -= 1
            fd = self.fileno()
            if table.pending.get(fd) is self:
                del table.pending[fd]
        super().close()


class GuardedListener(socket.socket):
    """The listening socket: accept() stays within the table's cap and burst (see the module's invariants)."""

    table: ConnectionTable

    def accept(self) -> tuple[socket.socket, Any]:  # type: ignore[override]
        table = self.table
        if table.burst_left <= 0:
            raise BlockingIOError  # asyncio stops accepting until the next iteration
        if table.burst_left == table.limits.burst:
            asyncio.get_running_loop().call_soon(table.reset_burst)
        fd, address = self._accept()  # type: ignore[attr-defined]
        table.burst_left -= 1
        conn = TrackedSocket(self.family, self.type, self.proto, fileno=fd)
        # No Nagle: a response goes out as headers then body, and a client's delayed ACK of the first would hold
        # the second back by 40 ms (measured: every boto3 call took >= 44 ms, ListCollections included)
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if not table.make_room():
            table.counts["shed (every connection busy)"] += 1
            conn.close()
            raise ConnectionAbortedError
        conn.table = table
        table.open += 1
        table.pending[fd] = conn
        return conn, address


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with the deadlines and the phase bookkeeping eviction needs."""

    table: ClassVar[ConnectionTable]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.phase = Phase.NEW
        self.since = 0.0  # loop time the current phase began
        self.sock: TrackedSocket | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.seen_cycle: object = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        raw = transport.get_extra_info("socket")
        self.sock = self.table.pending.pop(raw.fileno(), None) if raw is not None else None
        self._await_headers(Phase.FRESH)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        self.table.move(self, Phase.CLOSED)
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and cycle is not self.seen_cycle and self.phase is not Phase.CLOSED:
            self.seen_cycle = cycle  # a new request's headers are whole; its task has not started yet
            deadline = self.loop.time() + self.table.limits.body_timeout
            self.scope.setdefault("extensions", {})[BODY_DEADLINE] = deadline  # type: ignore[typeddict-item]
            self._enter(Phase.BODY)
            self._arm(self.table.limits.body_timeout + BODY_GRACE, "body timeouts")
        if self.phase is Phase.BODY and not cycle.more_body:
            self._enter(Phase.BUSY)
            self._disarm()

    def on_response_complete(self) -> None:
        if not self.transport.is_closing():
            if self.conn.their_state is h11.SEND_BODY:
                self.transport.close()  # answered before the body was whole: the rest is never read
            else:
                self._await_headers(Phase.IDLE)
        super().on_response_complete()

    def has_unread(self) -> bool:
        """Whether bytes wait unread in this connection's socket (a non-blocking peek of one byte)."""
        if self.sock is None or self.sock.fileno() < 0:
            return False
        try:
            return bool(self.sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (BlockingIOError, InterruptedError):
            return False
        except OSError:
            return False

    def evict(self) -> None:
        """Close now, releasing the descriptor in this iteration (the transport's own close waits for the next)."""
        self._disarm()
        self.table.move(self, Phase.CLOSED)
        self.transport.abort()  # unregisters the socket from the selector at once
        if self.sock is not None:
            self.sock.close()

    def _enter(self, phase: Phase) -> None:
        self.since = self.loop.time()
        self.table.move(self, phase)

    def _await_headers(self, phase: Phase) -> None:
        self._enter(phase)
        self._arm(self.table.limits.header_timeout, "header timeouts")

    def _arm(self, delay: float, what: str) -> None:
        self._disarm()
        self.timer = self.loop.call_later(delay, self._expire, what)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _expire(self, what: str) -> None:
        self.timer = None
        if not self.transport.is_closing():
            self.table.counts[what] += 1
            self.transport.close()


class GuardedServer(uvicorn.Server):
    """uvicorn's server with the table's accept-error handler and periodic report installed on its loop."""

    def __init__(self, config: uvicorn.Config, table: ConnectionTable) -> None:
        super().__init__(config)
        self.table = table

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self.table.exception_handler)
        loop.call_later(REPORT_EVERY, self.table.report, loop)
        await super().startup(sockets=sockets)


def guarded(host: str, port: int, limits: Limits) -> tuple[GuardedListener, type[GuardedH11Protocol]]:
    """A bound listening socket and a protocol class sharing one table with these limits."""
    table = ConnectionTable(limits)
    listener = GuardedListener(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                               socket.IPPROTO_TCP)
    listener.table = table
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    protocol = type("FaceLensH11Protocol", (GuardedH11Protocol,), {"table": table})
    return listener, protocol
