"""Job stats: counts by status and finished runs per interval, on every backend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.common.result import ErrorCode
from core.services.jobs import stats
from core.services.jobs.service import JobService
from core.services.jobs.types import JobStatus, RetryPolicy, RunStatus
from tests.services.jobs.conftest import JobMaker

MINUTE = timedelta(minutes=1)


def run_to_end(
    service: JobService, operator: Actor, make_job: JobMaker, outcome: RunStatus, **fields: object
) -> None:
    job = make_job(retry_policy=RetryPolicy(max_attempts=1), **fields)
    assert service.start_job(operator, job.id).ok
    if outcome is RunStatus.SUCCEEDED:
        assert service.complete_job(operator, job.id).ok
    elif outcome is RunStatus.FAILED:
        assert service.fail_job(operator, job.id, "boom").ok
    else:
        assert service.cancel_job(operator, job.id, "enough").ok


class TestGetJobStats:
    def test_counts_every_status_and_the_runs_of_each_minute(
        self, service: JobService, make_job: JobMaker, operator: Actor, admin: Actor, clock: FakeClock
    ) -> None:
        clock.set(datetime(2030, 1, 1, 12, 0, 30, tzinfo=UTC))
        make_job()
        make_job()
        run_to_end(service, operator, make_job, RunStatus.SUCCEEDED)  # 12:00:30
        clock.advance(timedelta(minutes=2))  # 12:02:30
        run_to_end(service, operator, make_job, RunStatus.FAILED)
        run_to_end(service, operator, make_job, RunStatus.SUCCEEDED)
        clock.advance(timedelta(seconds=40))  # 12:03:10
        run_to_end(service, operator, make_job, RunStatus.CANCELLED)

        counted = service.get_job_stats(admin, window=timedelta(minutes=10), bucket_width=MINUTE)

        assert counted.ok, counted.error
        value = counted.value
        assert value.as_of == clock.now()
        assert value.by_status == {
            JobStatus.PENDING: 2,
            JobStatus.SCHEDULED: 0,
            JobStatus.RUNNING: 0,
            JobStatus.SUCCEEDED: 2,
            JobStatus.FAILED: 1,
            JobStatus.CANCELLED: 1,
        }
        # 11:53 .. 12:03: whole minutes covering the last ten, the last one holding now
        assert [bucket.start for bucket in value.runs] == [
            datetime(2030, 1, 1, 11, 53, tzinfo=UTC) + i * MINUTE for i in range(11)
        ]
        by_start = {bucket.start.minute: bucket for bucket in value.runs}
        assert (by_start[0].succeeded, by_start[0].failed, by_start[0].cancelled) == (1, 0, 0)
        assert (by_start[2].succeeded, by_start[2].failed, by_start[2].cancelled) == (1, 1, 0)
        # A job cancelled while RUNNING closes its run CANCELLED.
        assert (by_start[3].succeeded, by_start[3].failed, by_start[3].cancelled) == (0, 0, 1)
        assert sum(bucket.finished for bucket in value.runs) == 4

    def test_runs_before_the_window_are_not_counted(
        self, service: JobService, make_job: JobMaker, operator: Actor, admin: Actor, clock: FakeClock
    ) -> None:
        run_to_end(service, operator, make_job, RunStatus.FAILED)
        clock.advance(timedelta(hours=2))
        run_to_end(service, operator, make_job, RunStatus.SUCCEEDED)

        value = service.get_job_stats(admin).value

        assert len(value.runs) == 61  # the default: an hour of minutes
        assert sum(b.succeeded for b in value.runs) == 1
        assert sum(b.failed for b in value.runs) == 0
        assert value.by_status[JobStatus.FAILED] == 1  # the job is still counted by status

    def test_a_member_counts_only_its_own_jobs_and_another_tenant_nothing(
        self,
        service: JobService,
        make_job: JobMaker,
        operator: Actor,
        member: Actor,
        other_member: Actor,
        stranger: Actor,
    ) -> None:
        run_to_end(service, operator, make_job, RunStatus.SUCCEEDED)  # member's
        run_to_end(service, operator, make_job, RunStatus.FAILED, by=other_member)
        make_job(by=other_member)

        mine = service.get_job_stats(member).value
        theirs = service.get_job_stats(other_member).value
        elsewhere = service.get_job_stats(stranger).value

        assert mine.by_status[JobStatus.SUCCEEDED] == 1
        assert sum(mine.by_status.values()) == 1
        assert sum(b.finished for b in mine.runs) == 1
        assert (theirs.by_status[JobStatus.FAILED], theirs.by_status[JobStatus.PENDING]) == (1, 1)
        assert sum(b.failed for b in theirs.runs) == 1 and sum(b.succeeded for b in theirs.runs) == 0
        assert sum(elsewhere.by_status.values()) == 0
        assert sum(b.finished for b in elsewhere.runs) == 0

    @pytest.mark.parametrize(
        ("window", "width", "field"),
        [
            (timedelta(seconds=30), MINUTE, "window"),
            (timedelta(hours=25), MINUTE, "window"),
            (timedelta(hours=1), timedelta(milliseconds=500), "bucket_width"),
            (timedelta(hours=24), timedelta(seconds=59), "bucket_width"),
            (timedelta(hours=1), timedelta(days=3650), "bucket_width"),
        ],
    )
    def test_a_window_or_width_out_of_range_names_its_field(
        self, service: JobService, admin: Actor, window: timedelta, width: timedelta, field: str
    ) -> None:
        refused = service.get_job_stats(admin, window=window, bucket_width=width)

        assert refused.code is ErrorCode.INVALID_ARGUMENT
        assert [v.field for v in refused.error.field_violations] == [field]  # type: ignore[union-attr]


def test_intervals_align_to_whole_multiples_of_the_width() -> None:
    now = datetime(2030, 1, 1, 12, 7, 45, tzinfo=UTC)

    window = stats.Window.ending_at(now, timedelta(minutes=30), timedelta(minutes=10))

    assert window.since == datetime(2030, 1, 1, 11, 30, tzinfo=UTC)
    assert window.count == 4  # 11:30, 11:40, 11:50, 12:00
    assembled = window.assemble(
        [(3, RunStatus.FAILED, 2), (3, RunStatus.FAILED, 1), (9, RunStatus.FAILED, 5)]
    )
    assert [b.failed for b in assembled] == [0, 0, 0, 3]


@pytest.mark.parametrize(
    ("finished", "minute"),
    [
        (datetime(2030, 1, 1, 12, 1, 0, tzinfo=UTC), 1),
        (datetime(2030, 1, 1, 12, 1, 0, 1, tzinfo=UTC), 1),
        (datetime(2030, 1, 1, 12, 0, 59, 999_999, tzinfo=UTC), 0),
        (datetime(2030, 1, 1, 12, 4, 1, tzinfo=UTC), 4),
    ],
)
def test_a_run_finished_on_an_edge_counts_in_the_interval_it_opens(
    service: JobService,
    make_job: JobMaker,
    operator: Actor,
    admin: Actor,
    clock: FakeClock,
    finished: datetime,
    minute: int,
) -> None:
    clock.set(datetime(2030, 1, 1, 11, 59, tzinfo=UTC))
    job = make_job()
    assert service.start_job(operator, job.id).ok
    clock.set(finished)
    assert service.complete_job(operator, job.id).ok
    clock.set(datetime(2030, 1, 1, 12, 5, 30, tzinfo=UTC))

    counted = service.get_job_stats(admin, window=timedelta(minutes=10), bucket_width=MINUTE).value

    ran = [bucket.start for bucket in counted.runs if bucket.succeeded]
    assert ran == [datetime(2030, 1, 1, 12, minute, tzinfo=UTC)]


def test_intervals_of_hours_over_a_day(
    service: JobService, make_job: JobMaker, operator: Actor, admin: Actor, clock: FakeClock
) -> None:
    clock.set(datetime(2030, 1, 1, 3, 30, tzinfo=UTC))
    run_to_end(service, operator, make_job, RunStatus.FAILED)
    clock.set(datetime(2030, 1, 1, 22, 10, tzinfo=UTC))
    run_to_end(service, operator, make_job, RunStatus.SUCCEEDED)

    counted = service.get_job_stats(admin, window=timedelta(hours=24), bucket_width=timedelta(hours=1)).value

    assert len(counted.runs) == 25
    assert [(b.start.hour, b.failed, b.succeeded) for b in counted.runs if b.finished] == [
        (3, 1, 0),
        (22, 0, 1),
    ]
