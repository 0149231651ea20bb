"""The actors the service tests act as."""

from __future__ import annotations

import pytest

from core.common.actor import Actor
from tests.conftest import ActorFactory


@pytest.fixture
def admin(make_actor: ActorFactory) -> Actor:
    return make_actor("admin", id="root")


@pytest.fixture
def operator(make_actor: ActorFactory) -> Actor:
    return make_actor("operator", id="worker")


@pytest.fixture
def member(make_actor: ActorFactory) -> Actor:
    return make_actor("member", id="ann")


@pytest.fixture
def other_member(make_actor: ActorFactory) -> Actor:
    return make_actor("member", id="bob")


@pytest.fixture
def viewer(make_actor: ActorFactory) -> Actor:
    return make_actor("viewer", id="vic")


@pytest.fixture
def stranger(make_actor: ActorFactory) -> Actor:
    """An admin of another tenant."""
    return make_actor("admin", id="root", tenant="globex")
