"""Claims, leases, heartbeats, fencing, cooperative cancel and reaping, on every backend."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from datetime import timedelta

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.common.result import ErrorCode, OperationResult
from core.messaging.events import Event
from core.services.jobs import types
from core.services.jobs.service import JobService
from core.services.jobs.types import Claim, JobResult, JobStatus, RetryPolicy, RunStatus
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tests.conftest import SQL_BACKENDS, ActorFactory
from tests.services.jobs.conftest import JobMaker


def types_of(events: list[Event]) -> list[str]:
    return [event.type for event in events]


def assert_failed(result: OperationResult[object], code: ErrorCode) -> None:
    assert not result.ok, f"expected {code}, got success"
    assert result.code is code, result.error


@pytest.fixture
def worker(make_actor: ActorFactory) -> Actor:
    return make_actor("worker", id="w1")


def claim_one(service: JobService, worker: Actor, **options: object) -> Claim:
    claimed = service.claim_jobs(worker, **options)  # type: ignore[arg-type]
    assert claimed.ok, claimed.error
    assert len(claimed.value) == 1, claimed.value
    return claimed.value[0]


class TestClaimJobs:
    def test_claims_by_priority_then_age_with_a_lease_on_a_new_run(
        self,
        service: JobService,
        make_job: JobMaker,
        worker: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        old, urgent, young = make_job(), make_job(priority=5), make_job()
        delivered.clear()

        claims = service.claim_jobs(
            worker, max_jobs=2, lease_duration=timedelta(seconds=20), worker_id="host:1"
        ).value

        assert [c.job.id for c in claims] == [urgent.id, old.id]
        first = claims[0]
        assert (first.job.status, first.job.attempt_count, first.job.version) == (JobStatus.RUNNING, 1, 2)
        assert (first.run.worker, first.run.started_by, first.run.attempt) == ("host:1", "w1", 1)
        assert first.run.lease_expires_at == clock.now() + timedelta(seconds=20)
        assert first.run.claimed
        assert types_of(delivered) == ["job.started", "job.status_changed"] * 2
        assert delivered[0].payload.run_id == first.run.id  # type: ignore[attr-defined]
        assert "host:1" in delivered[0].payload.reason  # type: ignore[attr-defined]
        assert service.claim_jobs(worker).value[0].job.id == young.id
        assert service.claim_jobs(worker).value == []

    def test_only_jobs_of_the_kinds_and_labels_asked_for_and_the_tenant(
        self, service: JobService, make_job: JobMaker, worker: Actor, make_actor: ActorFactory
    ) -> None:
        make_job(kind="mail.send")
        wanted = make_job(kind="report.build", labels={"region": "eu"})
        make_job(kind="report.build", labels={"region": "us"})
        other_tenant = make_actor("worker", tenant="globex")

        assert service.claim_jobs(other_tenant, max_jobs=10).value == []
        claims = service.claim_jobs(
            worker, kinds=frozenset({"report.build"}), labels={"region": "eu"}, max_jobs=10
        ).value
        assert [c.job.id for c in claims] == [wanted.id]

    def test_scheduled_and_running_jobs_are_not_claimed(
        self, service: JobService, job_in: object, worker: Actor
    ) -> None:
        for status in (JobStatus.SCHEDULED, JobStatus.RUNNING, JobStatus.SUCCEEDED):
            job_in(status)  # type: ignore[operator]
        assert service.claim_jobs(worker, max_jobs=10).value == []

    def test_who_may_claim(
        self, service: JobService, make_job: JobMaker, member: Actor, viewer: Actor, operator: Actor
    ) -> None:
        make_job()
        assert_failed(service.claim_jobs(member), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.claim_jobs(viewer), ErrorCode.PERMISSION_DENIED)
        assert len(service.claim_jobs(operator).value) == 1

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"kinds": frozenset({"bad kind!"})}, "kinds"),
            ({"max_jobs": 0}, "max_jobs"),
            ({"max_jobs": 101}, "max_jobs"),
            ({"lease_duration": timedelta(0)}, "lease_duration"),
            ({"lease_duration": timedelta(hours=2)}, "lease_duration"),
            ({"worker_id": "x" * 201}, "worker_id"),
            ({"labels": {"": "x"}}, "labels"),
        ],
    )
    def test_bad_requests_name_the_field(
        self, service: JobService, make_job: JobMaker, worker: Actor, options: dict[str, object], field: str
    ) -> None:
        job = make_job()
        refused = service.claim_jobs(worker, **options)  # type: ignore[arg-type]
        assert_failed(refused, ErrorCode.INVALID_ARGUMENT)
        assert refused.error is not None
        assert next(v.field for v in refused.error.field_violations).startswith(field)
        assert service.get_job(worker, job.id).value.status is JobStatus.PENDING


class TestRelease:
    def test_a_claim_that_never_reached_its_caller_gives_the_job_back(
        self, service: JobService, make_job: JobMaker, worker: Actor, delivered: list[Event]
    ) -> None:
        job = make_job()
        claim = claim_one(service, worker)
        delivered.clear()

        [released] = service.release_claims(worker, [claim])

        assert (released.status, released.attempt_count, released.started_at) == (JobStatus.PENDING, 0, None)
        assert types_of(delivered) == ["job.status_changed"]
        assert "released" in delivered[0].payload.reason  # type: ignore[attr-defined]
        run = service.get_job_history(worker, job.id).value.items[0]
        assert (run.status, run.error) == (RunStatus.CANCELLED, delivered[0].payload.reason)  # type: ignore[attr-defined]
        again = claim_one(service, worker)
        assert (again.job.id, again.run.attempt) == (job.id, 1)

    def test_a_run_that_no_longer_holds_the_job_releases_nothing(
        self, service: JobService, make_job: JobMaker, worker: Actor
    ) -> None:
        make_job()
        claim = claim_one(service, worker)
        service.complete_job(worker, claim.job.id, run_id=claim.run.id)
        assert service.release_claims(worker, [claim]) == []
        assert service.get_job(worker, claim.job.id).value.status is JobStatus.SUCCEEDED


class TestHeartbeat:
    def test_extends_the_lease_by_the_claims_duration_or_the_one_given(
        self, service: JobService, make_job: JobMaker, worker: Actor, clock: FakeClock, delivered: list[Event]
    ) -> None:
        make_job()
        claim = claim_one(service, worker, lease_duration=timedelta(seconds=10))
        clock.advance(timedelta(seconds=8))
        delivered.clear()

        beat = service.heartbeat_job(worker, claim.job.id, claim.run.id).value
        assert beat.run.lease_expires_at == clock.now() + timedelta(seconds=10)
        assert beat.run.heartbeat_at == clock.now()
        assert beat.cancel_requested is False
        assert beat.job.version == claim.job.version  # a bare heartbeat does not change the job
        assert delivered == []

        longer = service.heartbeat_job(
            worker, claim.job.id, claim.run.id, lease_duration=timedelta(minutes=5)
        )
        assert longer.value.run.lease_expires_at == clock.now() + timedelta(minutes=5)
        runs = service.get_job_history(worker, claim.job.id).value.items
        assert runs[0].lease_expires_at == clock.now() + timedelta(minutes=5)

    def test_progress_is_shown_on_the_job_and_announced_once(
        self, service: JobService, make_job: JobMaker, worker: Actor, delivered: list[Event]
    ) -> None:
        make_job()
        claim = claim_one(service, worker)
        delivered.clear()

        service.heartbeat_job(worker, claim.job.id, claim.run.id, progress=40.0, progress_message="half")
        service.heartbeat_job(worker, claim.job.id, claim.run.id, progress=40.0)

        job = service.get_job(worker, claim.job.id).value
        assert (job.progress, job.progress_message) == (40.0, "half")
        assert types_of(delivered) == ["job.progressed"]
        payload = delivered[0].payload
        assert isinstance(payload, types.JobProgressEvent)
        assert (payload.run_id, payload.progress, payload.message) == (claim.run.id, 40.0, "half")

    @pytest.mark.parametrize(
        ("options", "field"),
        [
            ({"progress": 101.0}, "progress"),
            ({"progress": -1.0}, "progress"),
            ({"progress_message": "x" * 1001}, "progress_message"),
            ({"lease_duration": timedelta(milliseconds=10)}, "lease_duration"),
        ],
    )
    def test_bad_heartbeats_name_the_field(
        self, service: JobService, make_job: JobMaker, worker: Actor, options: dict[str, object], field: str
    ) -> None:
        make_job()
        claim = claim_one(service, worker)
        refused = service.heartbeat_job(worker, claim.job.id, claim.run.id, **options)  # type: ignore[arg-type]
        assert_failed(refused, ErrorCode.INVALID_ARGUMENT)
        assert refused.error is not None and refused.error.field_violations[0].field == field

    def test_a_run_that_does_not_hold_the_job_is_refused_naming_the_current_one(
        self, service: JobService, make_job: JobMaker, worker: Actor, stranger: Actor, member: Actor
    ) -> None:
        make_job()
        claim = claim_one(service, worker)
        stale = uuid.uuid4()

        refused = service.heartbeat_job(worker, claim.job.id, stale)
        assert_failed(refused, ErrorCode.FAILED_PRECONDITION)
        assert refused.error is not None
        assert refused.error.details["current_run_id"] == str(claim.run.id)
        assert_failed(service.heartbeat_job(stranger, claim.job.id, claim.run.id), ErrorCode.NOT_FOUND)
        assert_failed(service.heartbeat_job(member, claim.job.id, claim.run.id), ErrorCode.PERMISSION_DENIED)

    def test_a_run_started_without_a_claim_has_no_lease_to_keep(
        self, service: JobService, job_in: object, operator: Actor
    ) -> None:
        job = job_in(JobStatus.RUNNING)  # type: ignore[operator]
        run = service.get_job_history(operator, job.id).value.items[0]
        assert not run.claimed
        assert_failed(service.heartbeat_job(operator, job.id, run.id), ErrorCode.FAILED_PRECONDITION)


class TestFencing:
    def test_the_holding_run_completes_the_job(
        self, service: JobService, make_job: JobMaker, worker: Actor, delivered: list[Event]
    ) -> None:
        make_job()
        claim = claim_one(service, worker)

        done = service.complete_job(worker, claim.job.id, JobResult(message="ok"), run_id=claim.run.id)

        assert done.value.status is JobStatus.SUCCEEDED
        run = service.get_job_history(worker, claim.job.id).value.items[0]
        assert (run.id, run.status) == (claim.run.id, RunStatus.SUCCEEDED)

    def test_a_claimed_job_cannot_be_finished_without_naming_its_run(
        self, service: JobService, make_job: JobMaker, worker: Actor, operator: Actor
    ) -> None:
        make_job()
        claim = claim_one(service, worker)

        for refused in (
            service.complete_job(operator, claim.job.id),
            service.fail_job(operator, claim.job.id, "boom"),
            service.complete_job(worker, claim.job.id, run_id=uuid.uuid4()),
            service.fail_job(worker, claim.job.id, "boom", run_id=uuid.uuid4()),
        ):
            assert_failed(refused, ErrorCode.FAILED_PRECONDITION)
            assert refused.error is not None
            assert refused.error.details["current_run_id"] == str(claim.run.id)
        assert service.get_job(worker, claim.job.id).value.status is JobStatus.RUNNING

    def test_start_job_callers_finish_without_a_run_id(
        self, service: JobService, job_in: object, operator: Actor
    ) -> None:
        job = job_in(JobStatus.RUNNING)  # type: ignore[operator]
        assert service.complete_job(operator, job.id).value.status is JobStatus.SUCCEEDED

    def test_a_run_id_for_a_job_that_is_not_running_is_refused(
        self, service: JobService, make_job: JobMaker, worker: Actor
    ) -> None:
        job = make_job()
        refused = service.complete_job(worker, job.id, run_id=uuid.uuid4())
        assert_failed(refused, ErrorCode.FAILED_PRECONDITION)
        assert "PENDING" in refused.error.message  # type: ignore[union-attr]


class TestCooperativeCancel:
    def test_cancelling_a_claimed_job_asks_its_worker(
        self,
        service: JobService,
        make_job: JobMaker,
        worker: Actor,
        member: Actor,
        delivered: list[Event],
    ) -> None:
        make_job(retry_policy=RetryPolicy(max_attempts=3))
        claim = claim_one(service, worker)
        delivered.clear()

        asked = service.cancel_job(member, claim.job.id, "not needed").value
        again = service.cancel_job(member, claim.job.id, "still not needed").value

        assert (asked.status, asked.cancel_requested) == (JobStatus.RUNNING, True)
        assert again.version == asked.version
        assert types_of(delivered) == ["job.cancel_requested"]
        assert service.heartbeat_job(worker, claim.job.id, claim.run.id).value.cancel_requested

        ended = service.fail_job(worker, claim.job.id, "stopped on request", run_id=claim.run.id).value
        assert (ended.status, ended.cancel_requested) == (JobStatus.CANCELLED, False)
        assert types_of(delivered)[-2:] == ["job.cancelled", "job.status_changed"]
        run = service.get_job_history(worker, claim.job.id).value.items[0]
        assert (run.status, run.error) == (RunStatus.CANCELLED, "stopped on request")

    def test_a_job_started_without_a_claim_is_cancelled_at_once(
        self, service: JobService, job_in: object, operator: Actor
    ) -> None:
        job = job_in(JobStatus.RUNNING)  # type: ignore[operator]
        assert service.cancel_job(operator, job.id).value.status is JobStatus.CANCELLED

    def test_the_next_claim_starts_without_the_old_request_or_progress(
        self, service: JobService, make_job: JobMaker, worker: Actor, member: Actor, clock: FakeClock
    ) -> None:
        make_job(retry_policy=RetryPolicy(max_attempts=2, initial_backoff=timedelta(seconds=1)))
        claim = claim_one(service, worker)
        service.heartbeat_job(worker, claim.job.id, claim.run.id, progress=50.0, progress_message="half")
        service.fail_job(worker, claim.job.id, "boom", run_id=claim.run.id)
        clock.advance(timedelta(seconds=2))
        service.promote_due_jobs()

        second = claim_one(service, worker)
        assert (second.job.progress, second.job.progress_message, second.job.attempt_count) == (None, "", 2)


class TestReaping:
    def test_a_lapsed_lease_fails_the_run_and_the_retry_policy_applies(
        self, service: JobService, make_job: JobMaker, worker: Actor, clock: FakeClock, delivered: list[Event]
    ) -> None:
        make_job(retry_policy=RetryPolicy(max_attempts=2, initial_backoff=timedelta(seconds=5)))
        claim = claim_one(service, worker, lease_duration=timedelta(seconds=10))
        clock.advance(timedelta(seconds=9))
        assert service.reap_expired_leases() == []
        clock.advance(timedelta(seconds=2))
        delivered.clear()

        [reaped] = service.reap_expired_leases()

        assert (reaped.status, reaped.next_run_at) == (
            JobStatus.SCHEDULED,
            clock.now() + timedelta(seconds=5),
        )
        assert types_of(delivered) == ["job.lease_expired", "job.status_changed"]
        payload = delivered[0].payload
        assert isinstance(payload, types.JobErrorEvent)
        assert (payload.run_id, payload.will_retry) == (claim.run.id, True)
        assert "expired" in payload.error and "w1" in payload.error
        run = service.get_job_history(worker, claim.job.id).value.items[0]
        assert run.status is RunStatus.FAILED

        late = service.complete_job(worker, claim.job.id, run_id=claim.run.id)
        assert_failed(late, ErrorCode.FAILED_PRECONDITION)
        assert_failed(
            service.heartbeat_job(worker, claim.job.id, claim.run.id), ErrorCode.FAILED_PRECONDITION
        )

        clock.advance(timedelta(seconds=5))
        service.promote_due_jobs()
        retried = claim_one(service, worker)
        assert (retried.job.id, retried.run.attempt) == (claim.job.id, 2)
        assert service.complete_job(worker, retried.job.id, run_id=retried.run.id).ok
        still_late = service.complete_job(worker, claim.job.id, run_id=claim.run.id)
        assert_failed(still_late, ErrorCode.FAILED_PRECONDITION)

    def test_without_a_retry_left_the_job_fails(
        self, service: JobService, make_job: JobMaker, worker: Actor, clock: FakeClock
    ) -> None:
        make_job()
        claim = claim_one(service, worker, lease_duration=timedelta(seconds=1))
        clock.advance(timedelta(seconds=2))
        [reaped] = service.reap_expired_leases()
        assert (reaped.id, reaped.status) == (claim.job.id, JobStatus.FAILED)
        assert "lease" in (reaped.last_error or "")

    def test_a_heartbeat_before_the_reaper_keeps_the_run(
        self, service: JobService, make_job: JobMaker, worker: Actor, clock: FakeClock
    ) -> None:
        make_job()
        claim = claim_one(service, worker, lease_duration=timedelta(seconds=1))
        clock.advance(timedelta(seconds=2))
        assert service.heartbeat_job(worker, claim.job.id, claim.run.id).ok
        assert service.reap_expired_leases() == []
        assert service.get_job(worker, claim.job.id).value.status is JobStatus.RUNNING

    def test_a_heartbeat_that_commits_after_the_reaper_looked_still_wins(
        self,
        service: JobService,
        make_job: JobMaker,
        worker: Actor,
        clock: FakeClock,
        uow: UnitOfWorkFactory,
        delivered: list[Event],
    ) -> None:
        """The reaper decides on a run it read as lapsed; its conditional close, the write
        that carries the decision out, finds the lease renewed and writes nothing."""
        make_job()
        claim = claim_one(service, worker, lease_duration=timedelta(seconds=1))
        clock.advance(timedelta(seconds=2))
        beats = [lambda: service.heartbeat_job(worker, claim.job.id, claim.run.id)]

        def heartbeat_first(*, read_only: bool = False) -> UnitOfWork:
            if not read_only and beats:
                assert beats.pop()().ok  # commits between the reaper's read and its change
            return uow(read_only=read_only)

        delivered.clear()
        assert JobService(uow=heartbeat_first, clock=clock).reap_expired_leases() == []
        assert service.get_job(worker, claim.job.id).value.status is JobStatus.RUNNING
        [run] = service.get_job_history(worker, claim.job.id).value.items
        assert (run.id, run.status) == (claim.run.id, RunStatus.RUNNING)
        assert run.lease_expires_at == clock.now() + timedelta(seconds=1)
        assert delivered == []

    def test_a_lapsed_job_whose_cancellation_was_asked_ends_cancelled(
        self, service: JobService, make_job: JobMaker, worker: Actor, member: Actor, clock: FakeClock
    ) -> None:
        make_job(retry_policy=RetryPolicy(max_attempts=5))
        claim = claim_one(service, worker, lease_duration=timedelta(seconds=1))
        service.cancel_job(member, claim.job.id)
        clock.advance(timedelta(seconds=2))
        [reaped] = service.reap_expired_leases()
        assert reaped.status is JobStatus.CANCELLED

    def test_a_fenced_out_leader_reaps_nothing(
        self, service: JobService, make_job: JobMaker, worker: Actor, clock: FakeClock
    ) -> None:
        make_job()
        claim_one(service, worker, lease_duration=timedelta(seconds=1))
        clock.advance(timedelta(seconds=2))

        def lost(_: UnitOfWork) -> bool:
            return False

        assert service.reap_expired_leases(fence=lost) == []
        assert len(service.reap_expired_leases()) == 1


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_eight_concurrent_claimers_run_every_job_exactly_once(
    service: JobService, make_job: JobMaker, make_actor: ActorFactory
) -> None:
    jobs = 400
    for _ in range(jobs):
        make_job()
    claimed: Counter[uuid.UUID] = Counter()
    lock = threading.Lock()
    errors: list[object] = []

    def work(n: int) -> None:
        actor = make_actor("worker", id=f"w{n}")
        while True:
            result = service.claim_jobs(actor, max_jobs=3)
            if not result.ok:
                errors.append(result.error)
                continue
            if not result.value:
                return
            for claim in result.value:
                with lock:
                    claimed[claim.job.id] += 1
                done = service.complete_job(actor, claim.job.id, run_id=claim.run.id)
                if not done.ok:
                    errors.append(done.error)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert [e for e in errors if getattr(e, "code", None) is not ErrorCode.ABORTED] == []
    assert len(claimed) == jobs and set(claimed.values()) == {1}
    checker = make_actor("operator")
    assert service.get_running_jobs(checker, limit=1000).value == []
    assert service.get_pending_jobs(checker, limit=1000).value == []
