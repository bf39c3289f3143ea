"""The console's HTTP surface under `/console`: sign-in, the session guard, and how a page runs an operation.

The console is one more entry point, not a side door: every read and write it makes is a registered operation
(`facelens.operations`) validated against the service model (`Backend.validate`), checked against the signed-in
key's `KeyScope` and run by `Backend.run` on the same worker pools as the HTTP API (`facelens.api.dispatch`),
with a `RequestContext` naming that key, so the accountability gate, purposes, floors and the audit record are
the ones boto3 gets. Invariants of the guard (`guarded`):
- no session (or an expired one): a GET or POST is sent to sign-in (303), nothing runs;
- a POST without the session's CSRF token is refused (403) before its body is used;
- an operation outside the key's scope is refused by the same check the API makes (403 here), and pages show
  only the controls `Console.may` allows, so a read-only key sees no write control.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from facelens import errors, operations
from facelens.api import dispatch
from facelens.config import ServerSettings
from facelens.console import html
from facelens.console.html import esc
from facelens.console.sessions import COOKIE, SIGNIN_COOKIE, Session, Sessions
from facelens.context import KeyScope, RequestContext
from facelens.service import Backend

log = logging.getLogger("facelens.console")
STATIC = __file__.rsplit("/", 1)[0] + "/static"
MAX_FORM_BYTES = 64 * 1024 * 1024  # a drop of images: each is still held to IndexFaces' 5 MiB
MAX_FILES = 100
FAILED_SIGNIN_DELAY = 1.0  # seconds before a failed sign-in is answered


class Console:
    """What every console page needs: the backend and pools the API uses, and the sessions."""

    def __init__(self, settings: ServerSettings, backend: Backend, pools: dispatch.Pools, sessions: Sessions) -> None:
        self.settings = settings
        self.backend = backend
        self.pools = pools
        self.sessions = sessions

    @staticmethod
    def may(session: Session, operation: str, collection_id: str | None = None) -> bool:
        """Whether the key's scope allows `operation` (on `collection_id`): which controls a page shows."""
        try:
            session.scope.check(operation, collection_id)
        except errors.AccessDeniedException:
            return False
        return True

    async def call(self, session: Session, operation: str, request: dict[str, Any],
                   purpose: str | None = None) -> tuple[dict[str, Any], RequestContext]:
        """Run one registered operation as the signed-in key, exactly as the HTTP API would: validated against
        the service model, scope-checked, run by `Backend.run` on the API's pools. The answer, and the context
        (its request id, named by the audit record, and what the gate disclosed)."""
        entry = operations.require(operation)
        context = RequestContext(session.key_id, session.scope, purpose, str(uuid.uuid4()))
        started, outcome = time.perf_counter(), "error"
        try:
            params = Backend.validate(operation, request)
            context.scope.check(operation, params.get("CollectionId"))
            result = await dispatch.run(self.backend, self.pools, entry, params, context)
            outcome = "ok"
        except errors.FaceLensError as exc:
            outcome = exc.code
            raise
        finally:
            log.info("%s console %s %s %.1fms key=%s", context.request_id, operation, outcome,
                     (time.perf_counter() - started) * 1000, session.key_id)
        return result, context


Handler = Callable[[Console, Request, Session, FormData | None], Awaitable[Response]]


def _signin_redirect(request: Request, expired: bool) -> Response:
    target = request.url.path if request.method == "GET" else "/console/"
    query = f"?next={quote(target)}" + ("&expired=1" if expired else "")
    response = RedirectResponse("/console/signin" + query, status_code=303)
    if expired:
        response.delete_cookie(COOKIE, path="/console")
    return response


def _status(exc: errors.FaceLensError) -> int:
    if isinstance(exc, errors.AccessDeniedException):
        return 403
    if isinstance(exc, errors.ResourceNotFoundException):
        return 404
    return exc.status


def guarded(console: Console, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """An endpoint that needs a live session, and for a POST the session's CSRF token."""

    async def endpoint(request: Request) -> Response:
        session = console.sessions.get(request.cookies.get(COOKIE))
        if session is None:
            return _signin_redirect(request, expired=COOKIE in request.cookies)
        form = None
        if request.method == "POST":
            declared = request.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
                return html.error_page("Too large", f"A request may carry at most {MAX_FORM_BYTES // 2**20} MiB.",
                                       session, 413)
            try:
                form = await request.form(max_files=MAX_FILES, max_fields=200)
            except HTTPException as exc:  # a malformed or oversized multipart body
                return html.error_page("Bad request", str(exc.detail), session, 400)
            token = form.get("csrf")
            if not session.csrf_ok(token if isinstance(token, str) else None):
                return html.error_page("Refused", "This request did not carry the session's CSRF token, so "
                                       "nothing was done. Reload the page and try again.", session, 403)
        try:
            return await handler(console, request, session, form)
        except errors.FaceLensError as exc:
            back = request.headers.get("referer") if request.method == "POST" else None
            return html.error_page(exc.code, exc.message, session, _status(exc), _local(back))
        except Exception:  # a fault of the service, not of the request: logged, and said without details
            log.exception("console %s %s failed", request.method, request.url.path)
            return html.error_page("Internal error", "The console could not answer this request; the server log "
                                   "has the details.", session, 500)
        finally:
            if form is not None:
                await form.close()

    return endpoint


def _local(url: str | None) -> str | None:
    """A console URL that is safe to link back to (same site, under /console), else None."""
    if not url:
        return None
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "") if parts.path.startswith("/console/") else None


def _next(value: str | None) -> str:
    return value if value and value.startswith("/console/") and "//" not in value else "/console/collections"


# -- sign-in and out
def _signin_page(console: Console, request: Request, message: str | None, status: int = 200) -> Response:
    token = console.sessions.signin_token()
    expired = request.query_params.get("expired") == "1"
    notes = (html.notice("Your session expired: sign in again.") if expired and message is None else "") + (
        html.notice(message, "error") if message else "")
    target = _next(request.query_params.get("next"))
    body = (f'{notes}<form method="post" action="/console/signin?next={esc(quote(target))}" class="signin">'
            f'<input type="hidden" name="signin" value="{esc(token)}">'
            '<p><label for="key_id">Access key id</label><input id="key_id" name="key_id" required '
            'autocomplete="username" spellcheck="false" autocapitalize="off"></p>'
            '<p><label for="secret">Secret access key</label><input id="secret" name="secret" type="password" '
            'required autocomplete="off"></p><p><button type="submit">Sign in</button></p></form>'
            '<p class="hint">The key\'s scope (read-only, admin, collections, operations) applies to everything '
            'the console shows and does. The secret is checked once and kept nowhere: the browser holds only a '
            'session cookie that expires after '
            f'{console.sessions.lifetime / 60:g} minutes without use.</p>')
    response = html.page("Sign in", body, status=status)
    response.set_cookie(SIGNIN_COOKIE, token, httponly=True, samesite="strict", path="/console",
                        secure=request.url.scheme == "https", max_age=int(console.sessions.lifetime))
    return response


def _signin(console: Console) -> Callable[[Request], Awaitable[Response]]:
    async def signin(request: Request) -> Response:
        if request.method == "GET":
            if console.sessions.get(request.cookies.get(COOKIE)) is not None:
                return RedirectResponse(_next(request.query_params.get("next")), status_code=303)
            return _signin_page(console, request, None)
        form = await request.form(max_files=0, max_fields=10)
        token = form.get("signin")
        token = token if isinstance(token, str) else None
        if not console.sessions.signin_ok(request.cookies.get(SIGNIN_COOKIE), token):
            return _signin_page(console, request, "The sign-in form had expired or did not come from this console: "
                                "try again.", 403)
        key_id, secret = str(form.get("key_id") or "").strip(), str(form.get("secret") or "")
        session = console.sessions.sign_in(key_id, secret)
        if session is None:
            await asyncio.sleep(FAILED_SIGNIN_DELAY)  # slows guessing; the secrets are 40 random characters
            return _signin_page(console, request, "Unknown access key id or wrong secret.", 401)
        response = RedirectResponse(_next(request.query_params.get("next")), status_code=303)
        response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict", path="/console",
                            secure=request.url.scheme == "https")
        response.delete_cookie(SIGNIN_COOKIE, path="/console")
        return response

    return signin


async def _signout(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    console.sessions.sign_out(session.id)
    response = RedirectResponse("/console/signin", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


async def _not_found(request: Request) -> Response:
    return html.error_page("Not found", "The console has no such page.", None, 404, "/console/")


async def _home(console: Console, request: Request, session: Session, form: FormData | None) -> Response:
    return RedirectResponse("/console/collections", status_code=303)


def mount(settings: ServerSettings, backend: Backend, pools: dispatch.Pools, keys: Mapping[str, str],
          scopes: Mapping[str, KeyScope]) -> list[BaseRoute]:
    """The console's routes (`/console` and everything under it), over the API's backend, pools and keys."""
    from facelens.console import audit_pages, collection_pages, search_pages, video_pages

    console = Console(settings, backend, pools, Sessions(keys, scopes, settings.console_session_seconds))

    def route(path: str, handler: Handler, methods: tuple[str, ...] = ("GET",)) -> Route:
        return Route(path, guarded(console, handler), methods=list(methods))

    routes: list[BaseRoute] = [
        Route("/signin", _signin(console), methods=["GET", "POST"]),
        route("/signout", _signout, ("POST",)),
        route("/", _home),
        *(route(path, handler, methods) for path, handler, methods in
          (*collection_pages.ROUTES, *search_pages.ROUTES, *audit_pages.ROUTES, *video_pages.ROUTES)),
        Mount("/static", app=StaticFiles(directory=STATIC), name="console-static"),
        Route("/{path:path}", _not_found, methods=["GET", "POST"]),
    ]
    return [Route("/console", lambda request: RedirectResponse("/console/", status_code=308)),
            Mount("/console", routes=routes)]
