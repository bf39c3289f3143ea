"""Console sessions: server-side, keyed by a random cookie, with an idle expiry and a CSRF token each.

Invariants:
- the browser holds only the session id (cookie `facelens_console`: HttpOnly, SameSite=Strict, Path=/console,
  Secure over HTTPS); the access key's secret is checked once at sign-in with `hmac.compare_digest` and never
  kept, in the session or anywhere else;
- a session expires `lifetime` seconds after its last use (FACELENS_CONSOLE_SESSION_SECONDS, default 1800) and
  at most `MAX_AGE` after sign-in; an expired session is forgotten when it is next seen;
- every state-changing request carries the session's CSRF token (a form field); it is compared in constant
  time and a request without it is refused before anything runs. Sign-in has its own token, bound to a
  short-lived pre-session cookie, so a third-party page cannot sign a browser in under its key;
- a session's scope is the key's `KeyScope` as the HTTP API loads it; the console never widens it;
- sessions live in the server process: a restart signs everybody out (and a second replica does not know them).
"""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from facelens.context import UNSCOPED, KeyScope

COOKIE = "facelens_console"
SIGNIN_COOKIE = "facelens_console_signin"
MAX_AGE = 12 * 3600.0  # no session outlives a working day, however active
MAX_SEARCHES = 50  # search results kept per session (oldest dropped first)
MAX_SIGNIN_FORMS = 10_000  # sign-in forms outstanding at once (the oldest is forgotten first)


@dataclass
class Session:
    """One signed-in browser: who it is (key id and scope), its CSRF token, and the searches it ran (their
    answers and what the search was told, kept server-side so a result page can be reloaded)."""

    id: str
    key_id: str
    scope: KeyScope
    csrf: str
    created: float
    expires: float
    searches: dict[str, dict[str, Any]] = field(default_factory=dict)

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(token.encode(), self.csrf.encode())  # type: ignore[union-attr]

    def remember(self, request_id: str, search: dict[str, Any]) -> None:
        self.searches[request_id] = search
        while len(self.searches) > MAX_SEARCHES:
            self.searches.pop(next(iter(self.searches)))


class Sessions:
    """The console's sessions over a fixed set of access keys (as `create_app` loads them)."""

    def __init__(self, keys: Mapping[str, str], scopes: Mapping[str, KeyScope], lifetime: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._keys = dict(keys)
        self._scopes = dict(scopes)
        self.lifetime = lifetime
        self._clock = clock
        self._sessions: dict[str, Session] = {}
        self._signins: dict[str, float] = {}
        self._lock = threading.Lock()

    def signin_token(self) -> str:
        """A token for one sign-in form (valid for `lifetime` seconds), set as a cookie and a form field."""
        token = secrets.token_urlsafe(24)
        with self._lock:
            now = self._clock()
            self._signins = {t: e for t, e in self._signins.items() if e > now}
            while len(self._signins) >= MAX_SIGNIN_FORMS:  # unauthenticated GETs cannot grow memory without bound
                self._signins.pop(next(iter(self._signins)))
            self._signins[token] = now + self.lifetime
        return token

    def signin_ok(self, cookie: str | None, field_value: str | None) -> bool:
        """Whether the form's token is the one its cookie names and is still valid (each is used once)."""
        if not cookie or not field_value or not hmac.compare_digest(cookie.encode(), field_value.encode()):
            return False
        with self._lock:
            expires = self._signins.pop(cookie, None)
        return expires is not None and expires > self._clock()

    def sign_in(self, key_id: str, secret: str) -> Session | None:
        """A new session for a key id and its secret; None when either is wrong (the same answer for both)."""
        known = self._keys.get(key_id)
        expected = (known or secrets.token_urlsafe(30)).encode()
        if not hmac.compare_digest(expected, secret.encode()) or known is None:
            return None
        now = self._clock()
        session = Session(secrets.token_urlsafe(32), key_id, self._scopes.get(key_id, UNSCOPED),
                          secrets.token_urlsafe(32), now, now + self.lifetime)
        with self._lock:
            self._sessions = {k: s for k, s in self._sessions.items() if s.expires > now}
            self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session of that id (its expiry pushed on), or None: unknown, or expired (then forgotten)."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(session_id)
            if session is None:
                return None
            if session.expires <= now or now - session.created >= MAX_AGE:
                del self._sessions[session_id]
                return None
            session.expires = now + self.lifetime
            return session

    def sign_out(self, session_id: str) -> None:
        with self._lock:
            self._sessions.pop(session_id, None)
