"""Console sessions: sealed, ended by time, by the token's expiry, or by signing out."""

from __future__ import annotations

from typing import Any

import pytest

from server.console.api import Identity
from server.console.sessions import Sessions, SessionTooLarge


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def test_a_session_holds_its_identity_until_its_lifetime_ends(clock: Clock) -> None:
    sessions = Sessions("secret", lifetime_s=60, clock=clock)
    cookie: dict[str, Any] = {}
    sessions.begin(cookie, Identity(actor="ann", tenant="acme", roles=("member",)))

    assert sessions.identity(cookie) == Identity(actor="ann", tenant="acme", roles=("member",))
    clock.now += 61
    assert sessions.identity(cookie) is None


def test_a_session_ends_with_its_token(clock: Clock) -> None:
    sessions = Sessions("secret", lifetime_s=3600, clock=clock)
    cookie: dict[str, Any] = {}
    sessions.begin(cookie, Identity(token="a.b.c", actor="ann", tenant="acme", expires=clock.now + 10))

    assert sessions.identity(cookie) is not None
    clock.now += 11
    assert sessions.identity(cookie) is None


def test_another_secret_or_a_changed_seal_opens_nothing(clock: Clock) -> None:
    cookie: dict[str, Any] = {}
    Sessions("one", clock=clock).begin(cookie, Identity(actor="ann", tenant="acme"))

    assert Sessions("two", clock=clock).identity(cookie) is None
    tampered = {"seal": cookie["seal"][:-4] + "AAAA"}
    assert Sessions("one", clock=clock).identity(tampered) is None
    assert Sessions("one", clock=clock).identity({"seal": 5}) is None


def test_signing_out_refuses_every_copy_and_forgets_it_once_it_would_have_ended(clock: Clock) -> None:
    sessions = Sessions("secret", lifetime_s=60, clock=clock)
    cookie: dict[str, Any] = {}
    sessions.begin(cookie, Identity(actor="ann", tenant="acme"))
    copy = dict(cookie)

    sessions.end(cookie)

    assert cookie == {} and sessions.identity(copy) is None
    clock.now += 61
    sessions.end({})  # a later sign-out sweeps what has ended anyway
    assert sessions._ended == {}


def test_a_token_too_large_for_a_cookie_is_refused(clock: Clock) -> None:
    with pytest.raises(SessionTooLarge):
        Sessions("secret", clock=clock).begin({}, Identity(token="a." + "b" * 5000 + ".c"))
