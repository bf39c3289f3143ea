"""The ASGI app: `POST /` speaks Rekognition's JSON 1.1 protocol, `GET /health` answers load balancers.

Request flow (each step can end it with an AWS-shaped error):
  SigV4 header checks -> body read within the size limit (refused from Content-Length, or while streaming) ->
  signature check -> X-Amz-Target routing -> implemented? -> JSON parse -> validation against botocore's
  model -> handler (S3 reads and inference on bounded pools) -> JSON response.
Every response carries `x-amzn-RequestId`. Logs name the operation, status, time and access key id; never a
secret, a signature, or image bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from botocore.model import OperationModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from facelens import console, errors, operations
from facelens.api import dispatch, protocol
from facelens.api.auth import SigV4Verifier
from facelens.api.connections import body_deadline
from facelens.api.credentials import load_access_keys, load_key_scopes
from facelens.api.errors import (
    CONTENT_TYPE,
    MethodNotAllowedException,
    NotImplementedOperationException,
    RequestEntityTooLargeException,
    RequestTimeoutException,
    SerializationException,
    UnknownOperationException,
    to_wire,
)
from facelens.api.workers import WorkerPool
from facelens.config import ServerSettings
from facelens.context import UNSCOPED, KeyScope, RequestContext
from facelens.service import Backend

log = logging.getLogger("facelens.api")
REQUEST_ID_HEADER = b"x-amzn-requestid"
OFF_LOOP_BYTES = 1024 * 1024
PURPOSE_HEADER = "x-facelens-purpose"  # why a search is run: a case or ticket reference, audited
DISCLOSURE_PREFIX = "x-facelens-"  # + effective-threshold, false-match-probability
MAX_PURPOSE = 1024


class RequestIdMiddleware:
    """Outermost layer: gives each HTTP request an id and puts it on every response, errors included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = str(uuid.uuid4())
        scope.setdefault("state", {})["request_id"] = request_id

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", []) if h[0].lower() != REQUEST_ID_HEADER]
                message = {**message, "headers": [*headers, (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        await self.app(scope, receive, send_with_id)


def _request_id(request: Request) -> str:
    return getattr(request.state, "request_id", None) or str(uuid.uuid4())


def aws_error(exc: BaseException, request_id: str) -> Response:
    status, body = to_wire(exc, request_id)
    return Response(body, status_code=status, media_type=CONTENT_TYPE)


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing (413) as soon as it is known to be over `limit`, before buffering it, and (408)
    when it is not whole by the connection's body deadline (`facelens.api.connections`, which then closes it)."""
    declared = request.headers.get("content-length")
    too_large = RequestEntityTooLargeException(f"Request body is over the limit of {limit:,} bytes.")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    try:
        async with asyncio.timeout_at(body_deadline(request.scope)):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise too_large
                chunks.append(chunk)
    except ClientDisconnect:  # nobody is left to answer; a client error, not a fault of the service
        raise SerializationException("The client disconnected before sending the whole body.") from None
    except TimeoutError:
        raise RequestTimeoutException("The request body did not arrive in time.") from None
    return b"".join(chunks)


def purpose_of(request: Request) -> str | None:
    """The `x-facelens-purpose` header as text: its bytes read as UTF-8 (as latin-1 when they are not UTF-8,
    which is how Python's http.client sends a str), stripped; None when absent or blank. A repeated header,
    a purpose over MAX_PURPOSE characters, or one with control characters is refused."""
    raw = [value for name, value in request.headers.raw if name.lower() == PURPOSE_HEADER.encode()]
    if not raw:
        return None
    if len(raw) > 1:
        raise errors.InvalidParameterException(f"{PURPOSE_HEADER} must be sent once")
    try:
        purpose = raw[0].decode("utf-8")
    except UnicodeDecodeError:
        purpose = raw[0].decode("latin-1")
    purpose = purpose.strip()
    if len(purpose) > MAX_PURPOSE or not purpose.isprintable():
        raise errors.InvalidParameterException(
            f"{PURPOSE_HEADER} must be printable text of at most {MAX_PURPOSE} characters")
    return purpose or None


def _decode(operation: OperationModel, body: bytes) -> dict[str, Any]:
    return protocol.validated(operation, protocol.parse_body(body))


class RekognitionEndpoint:
    """`POST /`: authenticates, routes, validates and dispatches one Rekognition request."""

    def __init__(self, settings: ServerSettings, verifier: SigV4Verifier, backend: Backend, pools: dispatch.Pools,
                 scopes: Mapping[str, KeyScope]) -> None:
        self.settings = settings
        self.verifier = verifier
        self.backend = backend
        self.pools = pools
        self.scopes = dict(scopes)

    def _context(self, request: Request, key_id: str, request_id: str) -> RequestContext:
        return RequestContext(key_id, self.scopes.get(key_id, UNSCOPED), purpose_of(request), request_id)

    async def __call__(self, request: Request) -> Response:
        request_id = _request_id(request)
        started = time.perf_counter()
        name, key_id = "-", "-"
        try:
            auth = self.verifier.precheck(request.headers)  # before the body is read
            body = await read_body(request, self.settings.max_body_bytes)
            scope = request.scope
            path = scope.get("raw_path") or quote(scope["path"]).encode()
            key_id = self.verifier.verify(auth, request.method, path.decode("latin-1"),
                                          scope.get("query_string", b"").decode("latin-1"),
                                          request.headers.items(), body)
            operation = protocol.operation_for(request.headers.get("x-amz-target"),
                                               request.headers.get("content-type"))
            name = operation.name
            entry = operations.get(name)
            if entry is None:
                raise NotImplementedOperationException(
                    f"FaceLens does not implement the Rekognition operation {name} yet."
                )
            context = self._context(request, key_id, request_id)
            if len(body) > OFF_LOOP_BYTES:  # decoding megabytes of base64 would stall every other request
                params = await self.pools.io.run(_decode, operation, body)
            else:
                params = _decode(operation, body)
            context.scope.check(name, params.get("CollectionId"))  # before any S3 read (Backend.run checks too)
            result = await dispatch.run(self.backend, self.pools, entry, params, context)
            response = Response(protocol.encode_response(operation, result), media_type=CONTENT_TYPE)
            for disclosure, value in context.disclosures.items():
                response.headers[DISCLOSURE_PREFIX + disclosure] = value
        except Exception as exc:  # every failure becomes AWS's error shape; non-FaceLens ones are 500s
            response = aws_error(exc, request_id)
        log.info("%s %s %d %.1fms key=%s", request_id, name, response.status_code,
                 (time.perf_counter() - started) * 1000, key_id)
        return response


def _health(pools: dispatch.Pools) -> Callable[[Request], Awaitable[Response]]:
    async def health(request: Request) -> Response:
        pool = pools.inference
        return JSONResponse({"status": "ok", "time": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
                             "inference": {"workers": pool.workers, "admitted": pool.admitted,
                                           "capacity": pool.capacity}})

    return health


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:
        return aws_error(MethodNotAllowedException("Rekognition requests are POST /."), _request_id(request))
    error = UnknownOperationException("Rekognition requests are POST /.")
    error.status = status if 400 <= status < 500 else 404
    return aws_error(error, _request_id(request))


async def _server_error(request: Request, exc: Exception) -> Response:
    return aws_error(exc, _request_id(request))


def create_app(settings: ServerSettings, backend: Backend, *, keys: Mapping[str, str] | None = None,
               scopes: Mapping[str, KeyScope] | None = None,
               clock: Callable[[], dt.datetime] | None = None) -> ASGIApp:
    """The service as an ASGI app over `backend` (`facelens.service.build(settings)`; tests pass one with a fake
    analyzer). `keys`, `scopes` and `clock` are for tests; by default the configured access keys and their
    scopes, and the system clock. The app starts the backend's background work at startup and closes the
    backend at shutdown."""
    if keys is None:
        keys = load_access_keys(settings.access_keys, settings.data_dir)
    if scopes is None:
        scopes = load_key_scopes(settings.access_keys, settings.data_dir, settings.admin_keys)
    pools = dispatch.Pools(inference=WorkerPool(settings.workers, settings.queue, "facelens-inference"),
                           io=WorkerPool(max(4, settings.workers), settings.queue, "facelens-io"))
    verifier = SigV4Verifier(keys, region=settings.region, clock=clock)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warmup = getattr(backend.analyzer, "warmup", None)
        if settings.warmup and warmup is not None:
            started = time.perf_counter()
            await asyncio.to_thread(warmup)
            log.info("models loaded in %.1fs", time.perf_counter() - started)
        policy = settings.policy
        log.info("server policy: searches at Similarity >= %g and >= 20 + 10 log10(faces / %g); CompareFaces >= %g; "
                 "purpose %s; retention sweep every %gs", policy.min_search_similarity,
                 policy.max_false_match_probability, policy.min_compare_similarity,
                 "required" if policy.require_purpose else "optional", settings.retention_interval)
        backend.start()
        yield
        await asyncio.to_thread(pools.shutdown)
        await asyncio.to_thread(backend.close)

    app = Starlette(
        routes=[
            Route("/", RekognitionEndpoint(settings, verifier, backend, pools, scopes).__call__, methods=["POST"]),
            Route("/health", _health(pools), methods=["GET", "HEAD"]),
            *console.mount(settings, backend, pools, keys, scopes),  # the web console (facelens.console)
        ],
        exception_handlers={HTTPException: _http_error, Exception: _server_error},
        lifespan=lifespan,
    )
    app.state.pools = pools
    app.state.backend = backend
    return RequestIdMiddleware(app)
