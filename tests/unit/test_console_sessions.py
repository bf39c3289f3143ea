"""Console sessions (`facelens.console.sessions`) with an injected clock: sign-in checks the secret and keeps
none of it, sessions expire after their idle time and at most MAX_AGE after sign-in, CSRF and sign-in tokens."""

from __future__ import annotations

from facelens.console.sessions import MAX_AGE, Sessions
from facelens.context import UNSCOPED, KeyScope

KEYS = {"FLKA": "secret-a", "FLKR": "secret-r"}
SCOPES = {"FLKR": KeyScope(read_only=True)}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_sign_in_needs_the_right_secret_and_keeps_only_the_key_id_and_scope() -> None:
    sessions = Sessions(KEYS, SCOPES, 60, Clock())
    assert sessions.sign_in("FLKA", "wrong") is None
    assert sessions.sign_in("FLKX", "secret-a") is None
    reader = sessions.sign_in("FLKR", "secret-r")
    assert reader is not None and reader.scope == KeyScope(read_only=True)
    assert sessions.sign_in("FLKA", "secret-a").scope == UNSCOPED
    assert "secret-r" not in repr(vars(reader))


def test_sessions_expire_when_idle_and_after_max_age() -> None:
    clock = Clock()
    sessions = Sessions(KEYS, {}, 60, clock)
    session = sessions.sign_in("FLKA", "secret-a")
    clock.now += 59
    assert sessions.get(session.id) is session  # used: its expiry moves on
    clock.now += 59
    assert sessions.get(session.id) is session
    clock.now += 60
    assert sessions.get(session.id) is None and sessions.get(session.id) is None  # expired, then forgotten
    generous = Sessions(KEYS, {}, MAX_AGE * 2, clock)  # an idle time longer than a working day is still capped
    active = generous.sign_in("FLKA", "secret-a")
    clock.now += MAX_AGE - 1
    assert generous.get(active.id) is active
    clock.now += 1
    assert generous.get(active.id) is None

def test_csrf_and_sign_in_tokens() -> None:
    clock = Clock()
    sessions = Sessions(KEYS, {}, 60, clock)
    session = sessions.sign_in("FLKA", "secret-a")
    assert session.csrf_ok(session.csrf) and not session.csrf_ok(None) and not session.csrf_ok("x" + session.csrf)
    token = sessions.signin_token()
    assert not sessions.signin_ok(token, "other") and not sessions.signin_ok(None, token)
    assert sessions.signin_ok(token, token) and not sessions.signin_ok(token, token)  # used once
    late = sessions.signin_token()
    clock.now += 61
    assert not sessions.signin_ok(late, late)
    sessions.sign_out(session.id)
    assert sessions.get(session.id) is None
