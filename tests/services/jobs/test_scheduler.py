"""The scheduler with a fake clock: one-off, cron across DST, intervals, retries, leadership."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from sqlalchemy import Engine

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.messaging.events import Event
from core.services.jobs.scheduler import Scheduler
from core.services.jobs.service import JobService
from core.services.jobs.types import JobCreate, JobStatus, RetryPolicy, Schedule
from core.services.unit_of_work import UnitOfWorkFactory
from modules.db import SqlAlchemyUnitOfWorkFactory
from modules.locks import FileLock, PostgresLease


class SharedLock:
    """Leadership among the schedulers of this test (one process, the in-memory store)."""

    _held: ClassVar[dict[str, object]] = {}
    _guard = threading.Lock()

    def __init__(self, name: str) -> None:
        self._name = name

    def try_acquire(self) -> bool:
        with self._guard:
            return self._held.setdefault(self._name, self) is self

    def fence(self) -> None:
        return None

    def release(self) -> None:
        with self._guard:
            if self._held.get(self._name) is self:
                del self._held[self._name]


@pytest.fixture
def scheduler(service: JobService) -> Iterator[Scheduler]:
    leader = Scheduler(jobs=service, lock=SharedLock(f"test-{uuid.uuid4()}"))
    yield leader
    leader.stop()


def promotions(delivered: list[Event]) -> list[str]:
    return [
        str(e.resource_id)
        for e in delivered
        if e.type == "job.status_changed" and getattr(e.payload, "new_status", None) is JobStatus.PENDING
    ]


class TestScheduler:
    def test_a_one_off_job_fires_once_at_its_time(
        self,
        service: JobService,
        scheduler: Scheduler,
        member: Actor,
        clock: FakeClock,
        delivered: list[Event],
    ) -> None:
        at = clock.now() + timedelta(minutes=10)
        job = service.create_job(member, JobCreate(name="n", kind="k", schedule=Schedule.once(at))).value
        clock.set(at - timedelta(microseconds=1))
        assert scheduler.tick() == []
        clock.set(at)
        assert [j.id for j in scheduler.tick()] == [job.id]
        assert service.get_job(member, job.id).value.status is JobStatus.PENDING
        clock.advance(timedelta(hours=1))
        assert scheduler.tick() == []
        assert promotions(delivered) == [str(job.id)]

    def test_a_weekday_cron_in_berlin_fires_at_the_right_utc_instants_across_dst(
        self, service: JobService, scheduler: Scheduler, member: Actor, operator: Actor, clock: FakeClock
    ) -> None:
        # Berlin leaves CET (UTC+1) for CEST (UTC+2) on Sunday 2030-03-31.
        clock.set(datetime(2030, 3, 27, 12, tzinfo=UTC))
        schedule = Schedule.cron_expression("0 9 * * MON-FRI", "Europe/Berlin")
        job = service.create_job(member, JobCreate(name="n", kind="k", schedule=schedule)).value
        fired = []
        for _ in range(4):
            due = service.get_job(member, job.id).value.next_run_at
            assert due is not None
            clock.set(due - timedelta(seconds=1))
            assert scheduler.tick() == []
            clock.set(due)
            assert [j.id for j in scheduler.tick()] == [job.id]
            fired.append(due)
            service.start_job(operator, job.id)
            clock.advance(timedelta(minutes=5))
            assert service.complete_job(operator, job.id).value.status is JobStatus.SCHEDULED
        assert fired == [
            datetime(2030, 3, 28, 8, tzinfo=UTC),  # Thursday, CET
            datetime(2030, 3, 29, 8, tzinfo=UTC),  # Friday, CET
            datetime(2030, 4, 1, 7, tzinfo=UTC),  # Monday, CEST
            datetime(2030, 4, 2, 7, tzinfo=UTC),
        ]

    @pytest.mark.parametrize(
        ("zone", "cron", "start", "expected"),
        [
            # Berlin: CEST -> CET on 2027-10-31 (02:00-03:00 twice), CET -> CEST on 2027-03-28.
            ("Europe/Berlin", "30 2 * * *", (10, 29, 12), ["10-30 00:30", "10-31 00:30", "11-01 01:30"]),
            ("Europe/Berlin", "30 2 * * *", (3, 26, 12), ["03-27 01:30", "03-28 01:00", "03-29 00:30"]),
            ("Europe/Berlin", "30 * * * *", (10, 30, 23), ["10-30 23:30", "10-31 00:30", "10-31 01:30"]),
            ("Europe/Berlin", "30 * * * *", (3, 27, 23), ["03-27 23:30", "03-28 00:30", "03-28 01:30"]),
            # Sydney: AEST -> AEDT on 2027-10-03 (02:00 skipped), AEDT -> AEST on 2027-04-04.
            ("Australia/Sydney", "30 2 * * *", (10, 1, 12), ["10-01 16:30", "10-02 16:00", "10-03 15:30"]),
            ("Australia/Sydney", "30 2 * * *", (4, 2, 12), ["04-02 15:30", "04-03 15:30", "04-04 16:30"]),
        ],
        ids=[
            "berlin-repeated-hour-fixed-time-runs-once",
            "berlin-skipped-hour-fixed-time-runs-at-the-jump",
            "berlin-repeated-hour-hourly-runs-in-both",
            "berlin-skipped-hour-hourly-skips-it",
            "sydney-skipped-hour-fixed-time-runs-at-the-jump",
            "sydney-repeated-hour-fixed-time-runs-once",
        ],
    )
    def test_the_dst_policy(
        self,
        service: JobService,
        scheduler: Scheduler,
        member: Actor,
        operator: Actor,
        clock: FakeClock,
        zone: str,
        cron: str,
        start: tuple[int, int, int],
        expected: list[str],
    ) -> None:
        month, day, hour = start
        clock.set(datetime(2027, month, day, hour, tzinfo=UTC))
        schedule = Schedule.cron_expression(cron, zone)
        job = service.create_job(member, JobCreate(name="n", kind="k", schedule=schedule)).value
        fired = []
        for _ in expected:
            due = service.get_job(member, job.id).value.next_run_at
            assert due is not None
            clock.set(due)
            assert [j.id for j in scheduler.tick()] == [job.id]
            fired.append(due.strftime("%m-%d %H:%M"))
            service.start_job(operator, job.id)
            clock.advance(timedelta(minutes=5))
            service.complete_job(operator, job.id)
        assert fired == expected

    def test_an_interval_job_fires_on_each_interval(
        self, service: JobService, scheduler: Scheduler, member: Actor, operator: Actor, clock: FakeClock
    ) -> None:
        start = clock.now()
        job = service.create_job(
            member, JobCreate(name="n", kind="k", schedule=Schedule.every(timedelta(minutes=15)))
        )
        fired = []
        for _ in range(3):
            due = service.get_job(member, job.value.id).value.next_run_at
            assert due is not None
            clock.set(due)
            assert len(scheduler.tick()) == 1
            fired.append(clock.now() - start)
            service.start_job(operator, job.value.id)
            service.complete_job(operator, job.value.id)
        assert fired == [timedelta(minutes=15), timedelta(minutes=30), timedelta(minutes=45)]

    def test_a_failed_job_is_retried_after_its_backoffs_then_fails(
        self, service: JobService, scheduler: Scheduler, member: Actor, operator: Actor, clock: FakeClock
    ) -> None:
        policy = RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1), multiplier=2.0)
        job = service.create_job(member, JobCreate(name="n", kind="k", retry_policy=policy)).value
        retried_after = []
        service.start_job(operator, job.id)
        for _ in range(2):
            failed_at = clock.now()
            assert service.fail_job(operator, job.id, "boom").value.status is JobStatus.SCHEDULED
            while not scheduler.tick():
                clock.advance(timedelta(milliseconds=250))
            retried_after.append(clock.now() - failed_at)
            service.start_job(operator, job.id)
        assert retried_after == [timedelta(seconds=1), timedelta(seconds=2)]
        assert service.fail_job(operator, job.id, "boom").value.status is JobStatus.FAILED
        clock.advance(timedelta(hours=1))
        assert scheduler.tick() == []

    def test_a_job_due_while_nothing_ran_fires_once(
        self,
        service: JobService,
        scheduler: Scheduler,
        member: Actor,
        clock: FakeClock,
        delivered: list[Event],
    ) -> None:
        job = service.create_job(
            member, JobCreate(name="n", kind="k", schedule=Schedule.every(timedelta(minutes=1)))
        )
        clock.advance(timedelta(days=3))  # 4,320 intervals missed
        assert len(scheduler.tick()) == 1
        assert scheduler.tick() == []
        assert promotions(delivered) == [str(job.value.id)]

    def test_a_paused_job_keeps_its_schedule_but_does_not_fire(
        self, service: JobService, scheduler: Scheduler, member: Actor, operator: Actor, clock: FakeClock
    ) -> None:
        job = service.create_job(
            member, JobCreate(name="n", kind="k", schedule=Schedule.every(timedelta(minutes=5)))
        )
        paused = service.pause_job(operator, job.value.id).value
        assert paused.paused
        assert paused.schedule == job.value.schedule
        clock.advance(timedelta(hours=1))
        assert scheduler.tick() == []
        service.resume_job(operator, job.value.id)
        assert len(scheduler.tick()) == 1

    def test_only_the_leader_acts(self, service: JobService, member: Actor, clock: FakeClock) -> None:
        name = f"shared-{uuid.uuid4()}"
        first, second = SharedLock(name), SharedLock(name)
        leader, follower = Scheduler(jobs=service, lock=first), Scheduler(jobs=service, lock=second)
        service.create_job(member, JobCreate(name="n", kind="k", schedule=Schedule.once(clock.now())))
        assert len(leader.tick()) == 1
        service.create_job(member, JobCreate(name="n", kind="k", schedule=Schedule.once(clock.now())))
        assert follower.tick() == []
        leader.stop()
        assert len(follower.tick()) == 1
        follower.stop()


class TestScheduleControl:
    def test_run_now_promotes_a_scheduled_even_paused_job(
        self, service: JobService, member: Actor, operator: Actor, clock: FakeClock, delivered: list[Event]
    ) -> None:
        at = clock.now() + timedelta(days=1)
        job = service.create_job(member, JobCreate(name="n", kind="k", schedule=Schedule.once(at))).value
        service.pause_job(operator, job.id)
        delivered.clear()
        now = service.run_job_now(operator, job.id).value
        assert (now.status, now.paused) == (JobStatus.PENDING, True)
        assert [e.type for e in delivered] == ["job.status_changed"]
        assert service.run_job_now(operator, job.id).value == now  # already pending: nothing to do

    def test_events_permissions_and_states(
        self, service: JobService, member: Actor, operator: Actor, viewer: Actor, delivered: list[Event]
    ) -> None:
        job = service.create_job(member, JobCreate(name="n", kind="k")).value
        delivered.clear()
        assert service.pause_job(operator, job.id).value.paused
        assert service.pause_job(operator, job.id).value.paused  # idempotent, no second event
        assert not service.resume_job(operator, job.id).value.paused
        assert [e.type for e in delivered] == ["job.updated", "job.updated"]
        assert [e.payload.changed_fields for e in delivered] == [("paused",), ("paused",)]
        assert service.pause_job(member, job.id).code.name == "PERMISSION_DENIED"
        assert service.run_job_now(viewer, job.id).code.name == "PERMISSION_DENIED"
        service.start_job(operator, job.id)
        assert service.run_job_now(operator, job.id).code.name == "FAILED_PRECONDITION"


def test_file_locks_exclude_each_other(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "db.scheduler.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.try_acquire()
    assert first.try_acquire()
    assert not second.try_acquire()
    first.release()
    assert second.try_acquire()
    second.release()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_two_schedulers_on_postgresql_never_both_promote_a_job(
    engine_for: Callable[[str], Engine], uow: UnitOfWorkFactory, clock: FakeClock, delivered: list[Event]
) -> None:
    engine = engine_for("postgresql")
    assert isinstance(uow, SqlAlchemyUnitOfWorkFactory)
    owner = Actor(id="ann", tenant="acme", roles=frozenset({"member"}))
    service = JobService(uow=uow, clock=clock)
    jobs = [
        service.create_job(
            owner, JobCreate(name=f"j{n}", kind="k", schedule=Schedule.once(clock.now()))
        ).value
        for n in range(40)
    ]
    schedulers = [
        Scheduler(jobs=JobService(uow=uow, clock=clock), lock=PostgresLease(engine, "scheduler"))
        for _ in range(2)
    ]
    results: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def run(index: int) -> None:
        start.wait()
        for _ in range(5):
            results[index] += [str(j.id) for j in schedulers[index].tick()]

    threads = [threading.Thread(target=run, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    leaders = [s for s in schedulers if s.leading]
    assert len(leaders) == 1
    assert sorted(results[0] + results[1]) == sorted(str(j.id) for j in jobs)
    assert [] in results
    assert sorted(promotions(delivered)) == sorted(str(j.id) for j in jobs)
    follower = next(s for s in schedulers if not s.leading)
    leaders[0].stop()
    follower.tick()
    assert follower.leading  # the leader stepped down: the other takes over
    follower.stop()


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_a_stalled_leader_is_replaced_when_its_lease_runs_out_and_its_late_promotions_are_refused(
    engine_for: Callable[[str], Engine], uow: UnitOfWorkFactory, clock: FakeClock
) -> None:
    engine = engine_for("postgresql")
    owner = Actor(id="ann", tenant="acme", roles=frozenset({"member"}))
    service = JobService(uow=uow, clock=clock)
    stalled, other = (
        PostgresLease(engine, "scheduler", ttl_s=0.3),
        PostgresLease(engine, "scheduler", ttl_s=0.3),
    )
    assert stalled.try_acquire() and not other.try_acquire()
    first_token = stalled.token
    assert stalled.try_acquire() and stalled.token == first_token  # a renewal keeps the token
    late_fence = stalled.fence()
    assert late_fence is not None

    time.sleep(0.5)  # the leader stalls past its lease
    assert other.try_acquire()
    assert other.token is not None and first_token is not None and other.token > first_token

    due = service.create_job(
        owner, JobCreate(name="due", kind="k", schedule=Schedule.once(clock.now()))
    ).value
    assert service.promote_due_jobs(fence=late_fence) == []  # the stalled leader wakes up: refused
    assert service.get_job(owner, due.id).value.status is JobStatus.SCHEDULED
    assert not stalled.try_acquire()  # and it does not lead again while the other holds the lease
    promoted = service.promote_due_jobs(fence=other.fence())
    assert [j.id for j in promoted] == [due.id]
    other.release()
    assert stalled.try_acquire()  # a released lease is free at once
