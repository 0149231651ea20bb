"""Fixtures for TaskService tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.services.jobs.service import JobService
from core.services.tasks.service import TaskService
from core.services.tasks.types import Task, TaskCreate
from core.services.unit_of_work import UnitOfWorkFactory
from tests.conftest import ActorFactory


@pytest.fixture
def service(uow: UnitOfWorkFactory, clock: FakeClock, jobs: JobService) -> TaskService:
    """TaskService on the backend under test."""
    return TaskService(uow=uow, jobs=jobs, clock=clock)


@pytest.fixture
def jobs(uow: UnitOfWorkFactory, clock: FakeClock) -> JobService:
    """JobService on the same storage, for tasks that belong to jobs."""
    return JobService(uow=uow, clock=clock)


@pytest.fixture
def assignee(make_actor: ActorFactory) -> Actor:
    return make_actor("member", id="carl")


TaskMaker = Callable[..., Task]


@pytest.fixture
def make_task(service: TaskService, member: Actor) -> TaskMaker:
    """Create a task (by ``member`` unless ``by``; under ``parent`` when given)."""
    counter = iter(range(1_000_000))

    def build(by: Actor | None = None, parent: Task | None = None, **fields: object) -> Task:
        spec = TaskCreate(**{"title": f"task-{next(counter)}", **fields})
        actor = by or member
        result = (
            service.create_subtask(actor, parent.id, spec) if parent else service.create_task(actor, spec)
        )
        assert result.ok, result.error
        return result.value

    return build
