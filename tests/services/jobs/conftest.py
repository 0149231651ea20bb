"""Fixtures for JobService tests: the service on every backend, and jobs in each status."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.services.jobs.service import JobService
from core.services.jobs.types import Job, JobCreate, JobStatus, RetryPolicy, Schedule
from core.services.unit_of_work import UnitOfWorkFactory


@pytest.fixture
def service(uow: UnitOfWorkFactory, clock: FakeClock) -> JobService:
    """JobService on the backend under test."""
    return JobService(uow=uow, clock=clock)


JobMaker = Callable[..., Job]


@pytest.fixture
def make_job(service: JobService, member: Actor) -> JobMaker:
    """Create a job (by ``member`` unless ``by`` is given) and return it."""
    counter = iter(range(1_000_000))

    def build(by: Actor | None = None, **fields: object) -> Job:
        spec = {"name": f"job-{next(counter)}", "kind": "report.build", **fields}
        result = service.create_job(by or member, JobCreate(**spec))
        assert result.ok, result.error
        return result.value

    return build


@pytest.fixture
def job_in(
    service: JobService, operator: Actor, make_job: JobMaker, clock: FakeClock
) -> Callable[[JobStatus], Job]:
    """A job of ``member`` brought to the given status through the service."""

    def build(status: JobStatus) -> Job:
        job = make_job(retry_policy=RetryPolicy(max_attempts=1))
        if status is JobStatus.PENDING:
            return job
        if status is JobStatus.SCHEDULED:
            return service.schedule_job(
                operator, job.id, Schedule.once(clock.now() + timedelta(hours=1))
            ).value
        if status is JobStatus.CANCELLED:
            return service.cancel_job(operator, job.id, "test").value
        running = service.start_job(operator, job.id).value
        if status is JobStatus.RUNNING:
            return running
        if status is JobStatus.SUCCEEDED:
            return service.complete_job(operator, job.id).value
        return service.fail_job(operator, job.id, "boom").value

    return build
