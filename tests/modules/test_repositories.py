"""One contract for every storage backend: memory, SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from datetime import timedelta

import pytest

from core.common.clock import FakeClock
from core.common.errors import ConflictError, StaleVersionError
from core.common.ids import new_id
from core.services.jobs.types import (
    Job,
    JobFilters,
    JobResult,
    JobRun,
    JobStatus,
    RetryPolicy,
    RunStatus,
    Schedule,
)
from core.services.tasks.types import Task, TaskFilters, TaskPriority, TaskStatus
from core.services.unit_of_work import UnitOfWorkFactory


class TestJobRepository:
    def test_a_job_round_trips_with_every_field(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job], clock: FakeClock
    ) -> None:
        job = new_job(
            description="d",
            payload={"nested": {"list": [1, 2.5, None, True]}, "s": "é"},
            labels={"env": "prod"},
            priority=7,
            status=JobStatus.SCHEDULED,
            schedule=Schedule.cron_expression("*/5 * * * *", "America/New_York"),
            retry_policy=RetryPolicy(max_attempts=4, initial_backoff=timedelta(seconds=1.5), multiplier=3.0),
            attempt_count=2,
            result=JobResult(data={"ok": 1}, message="m"),
            last_error="e",
            next_run_at=clock.now() + timedelta(microseconds=123456),
            started_at=clock.now(),
            finished_at=clock.now(),
            version=5,
            task_total=3,
            task_done=1,
            request_id="req",
        )
        with uow() as work:
            work.jobs.add(job)
            work.commit()
        with uow(read_only=True) as work:
            assert work.jobs.get("acme", job.id) == job
            assert work.jobs.get("globex", job.id) is None
            assert work.jobs.get_by_request_id("acme", "ann", "req") == job
            assert work.jobs.get_by_request_id("acme", "bob", "req") is None

    def test_several_kinds_and_statuses_page_in_id_order(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job]
    ) -> None:
        kinds, statuses = ["a", "b", "c"], [JobStatus.PENDING, JobStatus.FAILED, JobStatus.RUNNING]
        made = [new_job(kind=kinds[n % 3], status=statuses[(n // 3) % 3]) for n in range(45)]
        with uow() as work:
            for job in made:
                work.jobs.add(job)
            work.commit()
        filters = JobFilters(
            kinds=frozenset({"a", "c"}), statuses=frozenset({JobStatus.PENDING, JobStatus.FAILED})
        )
        expected = [j.id for j in made if j.kind in filters.kinds and j.status in filters.statuses]
        seen: list[uuid.UUID] = []
        after = None
        with uow(read_only=True) as work:
            while True:
                page = work.jobs.list("acme", filters, after=after, limit=4)
                seen += [job.id for job in page]
                if len(page) < 4:
                    break
                after = page[-1].id
        assert seen == sorted(expected) and len(expected) == 20

    def test_interval_and_once_schedules_round_trip(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job], clock: FakeClock
    ) -> None:
        every = new_job(schedule=Schedule.every(timedelta(minutes=90)))
        once = new_job(schedule=Schedule.once(clock.now()))
        with uow() as work:
            work.jobs.add(every)
            work.jobs.add(once)
            work.commit()
        with uow(read_only=True) as work:
            assert work.jobs.get("acme", every.id) == every
            assert work.jobs.get("acme", once.id) == once

    def test_a_reused_request_id_is_a_named_conflict(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job]
    ) -> None:
        with uow() as work:
            work.jobs.add(new_job(request_id="same"))
            work.commit()
        with pytest.raises(ConflictError) as raised, uow() as work:
            work.jobs.add(new_job(request_id="same"))
            work.commit()  # an insert may be held back until the commit
        assert raised.value.constraint == "uq_jobs_request"

    def test_save_and_delete_check_the_version(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job]
    ) -> None:
        job = new_job()
        with uow() as work:
            work.jobs.add(job)
            work.commit()
        renamed = dataclasses.replace(job, name="x", version=2)
        with uow() as work:
            work.jobs.save(renamed, expected_version=1)
            work.commit()
        with pytest.raises(StaleVersionError) as raised, uow() as work:
            work.jobs.save(dataclasses.replace(job, version=2), expected_version=1)
        assert (raised.value.expected, raised.value.current) == (1, 2)
        with pytest.raises(StaleVersionError), uow() as work:
            work.jobs.delete(job)
        with uow() as work:
            work.jobs.delete(renamed)
            work.commit()
        with uow(read_only=True) as work:
            assert work.jobs.get("acme", job.id) is None

    def test_list_is_keyset_ordered_and_tenant_bound(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job]
    ) -> None:
        jobs = [new_job() for _ in range(5)]
        with uow() as work:
            for job in jobs:
                work.jobs.add(job)
            work.jobs.add(new_job(tenant="globex"))
            work.commit()
        with uow(read_only=True) as work:
            first = work.jobs.list("acme", JobFilters(), after=None, limit=2)
            rest = work.jobs.list("acme", JobFilters(), after=first[-1].id, limit=10)
        assert [j.id for j in [*first, *rest]] == [j.id for j in jobs]

    def test_due_jobs_across_tenants(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job], clock: FakeClock
    ) -> None:
        now = clock.now()
        late = new_job(status=JobStatus.SCHEDULED, next_run_at=now - timedelta(minutes=5), tenant="globex")
        due = new_job(status=JobStatus.SCHEDULED, next_run_at=now)
        future = new_job(status=JobStatus.SCHEDULED, next_run_at=now + timedelta(seconds=1))
        with uow() as work:
            for job in (future, due, late):
                work.jobs.add(job)
            work.commit()
        with uow(read_only=True) as work:
            assert [j.id for j in work.jobs.due(now, limit=10)] == [late.id, due.id]

    def test_runs_newest_first_and_the_open_one(
        self, uow: UnitOfWorkFactory, new_job: Callable[..., Job], clock: FakeClock
    ) -> None:
        job = new_job()
        runs = [
            JobRun(
                id=new_id(), job_id=job.id, tenant="acme", attempt=n, started_by="w", started_at=clock.now()
            )
            for n in (1, 2)
        ]
        closed = dataclasses.replace(
            runs[0], status=RunStatus.SUCCEEDED, finished_at=clock.now(), result=JobResult(data={"a": 1})
        )
        with uow() as work:
            work.jobs.add(job)
            for run in runs:
                work.jobs.add_run(run)
            work.jobs.save_run(closed)
            work.commit()
        with uow(read_only=True) as work:
            assert work.jobs.runs(job.id, before=None, limit=10) == [runs[1], closed]
            assert work.jobs.runs(job.id, before=runs[1].id, limit=10) == [closed]
            assert work.jobs.open_run(job.id) == runs[1]
            assert work.jobs.open_run(uuid.uuid4()) is None


class TestTaskRepository:
    def test_a_task_round_trips(
        self, uow: UnitOfWorkFactory, new_task: Callable[..., Task], clock: FakeClock
    ) -> None:
        parent = new_task()
        task = new_task(
            description="d",
            status=TaskStatus.IN_PROGRESS,
            priority=TaskPriority.URGENT,
            assignee="carl",
            parent_id=parent.id,
            job_id=uuid.uuid4(),
            due_at=clock.now() + timedelta(days=1),
            labels={"a": "b"},
            cancel_reason="r",
            completed_at=clock.now(),
            version=3,
            request_id="q",
        )
        with uow() as work:
            work.tasks.add(parent)
            work.tasks.add(task)
            work.commit()
        with uow(read_only=True) as work:
            assert work.tasks.get("acme", task.id) == task
            assert work.tasks.get("globex", task.id) is None
            assert work.tasks.get_by_request_id("acme", "ann", "q") == task
            assert work.tasks.descendants("acme", parent.id) == [task]

    def test_conflicts_and_versions(self, uow: UnitOfWorkFactory, new_task: Callable[..., Task]) -> None:
        task = new_task(request_id="r")
        with uow() as work:
            work.tasks.add(task)
            work.commit()
        with pytest.raises(ConflictError) as raised, uow() as work:
            work.tasks.add(new_task(request_id="r"))
            work.commit()  # an insert may be held back until the commit
        assert raised.value.constraint == "uq_tasks_request"
        with pytest.raises(StaleVersionError), uow() as work:
            work.tasks.save(task, expected_version=2)
        with pytest.raises(StaleVersionError), uow() as work:
            work.tasks.delete(dataclasses.replace(task, version=2))

    def test_reader_sees_owned_and_assigned(
        self, uow: UnitOfWorkFactory, new_task: Callable[..., Task]
    ) -> None:
        owned, held, other = new_task(), new_task(owner="bob", assignee="ann"), new_task(owner="bob")
        with uow() as work:
            for task in (owned, held, other):
                work.tasks.add(task)
            work.commit()
        with uow(read_only=True) as work:
            assert [
                t.id for t in work.tasks.list("acme", TaskFilters(), reader="ann", after=None, limit=9)
            ] == [
                owned.id,
                held.id,
            ]
            everything = work.tasks.list("acme", TaskFilters(), reader=None, after=owned.id, limit=9)
            assert [t.id for t in everything] == [held.id, other.id]
