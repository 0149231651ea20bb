"""Both services on one store, and the reactor that carries events between them."""

from __future__ import annotations

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.messaging.reactions import Reactor
from core.services.jobs.service import JobService
from core.services.tasks.service import TaskService
from core.services.unit_of_work import UnitOfWorkFactory
from tests.conftest import ActorFactory


class Services:
    """JobService, TaskService and a Reactor over one unit-of-work factory."""

    def __init__(self, uow: UnitOfWorkFactory, clock: FakeClock) -> None:
        self.jobs = JobService(uow=uow, clock=clock)
        self.tasks = TaskService(uow=uow, jobs=self.jobs, clock=clock)
        self.reactor = Reactor(uow=uow, reactions=[*self.jobs.reactions(), *self.tasks.reactions()])


@pytest.fixture
def services(uow: UnitOfWorkFactory, clock: FakeClock) -> Services:
    return Services(uow, clock)


@pytest.fixture
def ann(make_actor: ActorFactory) -> Actor:
    return make_actor("member", id="ann")


@pytest.fixture
def ops(make_actor: ActorFactory) -> Actor:
    return make_actor("operator", id="ops")


# The real server of the end-to-end tests, for the tests that go through it.
from tests.e2e.conftest import channel, serve, server, settings  # noqa: E402, F401
