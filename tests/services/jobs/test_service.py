"""JobService behaviour, use case by use case, on every storage backend."""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from core.common import context
from core.common.actor import Actor
from core.common.clock import FakeClock
from core.common.errors import UNCONDITIONAL_ATTEMPTS, StaleVersionError
from core.common.result import ErrorCode, OperationResult
from core.messaging.events import Event
from core.services.jobs import types
from core.services.jobs.service import JobService
from core.services.jobs.types import (
    Job,
    JobCall,
    JobCreate,
    JobFilters,
    JobResult,
    JobStatus,
    JobUpdate,
    RetryPolicy,
    RunStatus,
    Schedule,
)
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from tests.services.jobs.conftest import JobMaker


def types_of(events: list[Event]) -> list[str]:
    return [event.type for event in events]


def assert_failed(result: OperationResult[object], code: ErrorCode) -> None:
    assert not result.ok, f"expected {code}, got success"
    assert result.code is code, result.error


class TestCreateJob:
    def test_creates_a_pending_job_owned_by_the_actor(
        self, service: JobService, member: Actor, delivered: list[Event], clock: FakeClock
    ) -> None:
        result = service.create_job(
            member,
            JobCreate(
                name="nightly", kind="report.build", payload={"day": 1}, labels={"team": "a"}, priority=5
            ),
        )

        job = result.value
        assert job.status is JobStatus.PENDING
        assert (job.owner, job.tenant, job.version, job.priority) == ("ann", "acme", 1, 5)
        assert job.created_at == clock.now()
        assert service.get_job(member, job.id).value == job
        assert types_of(delivered) == ["job.created"]
        event = delivered[0]
        assert (event.sequence, event.tenant, event.actor_id, event.resource_id, event.job_id) == (
            1,
            "acme",
            "ann",
            job.id,
            job.id,
        )
        assert isinstance(event.payload, types.JobEvent)
        assert event.payload.name == "nightly"

    def test_a_job_with_a_schedule_starts_scheduled(
        self, service: JobService, member: Actor, delivered: list[Event], clock: FakeClock
    ) -> None:
        at = clock.now() + timedelta(minutes=5)
        job = service.create_job(member, JobCreate(name="later", kind="k", schedule=Schedule.once(at))).value

        assert job.status is JobStatus.SCHEDULED
        assert job.next_run_at == at
        assert types_of(delivered) == ["job.created", "job.scheduled"]

    def test_the_correlation_id_travels_on_the_events(
        self, service: JobService, member: Actor, delivered: list[Event]
    ) -> None:
        def create() -> None:
            context.correlation_id.set("req-42")  # as the call guard does for each call
            service.create_job(member, JobCreate(name="n", kind="k"))

        contextvars.copy_context().run(create)
        assert delivered[0].correlation_id == "req-42"

    @pytest.mark.parametrize(
        ("spec", "field"),
        [
            ({"name": ""}, "name"),
            ({"name": "   "}, "name"),
            ({"name": "x" * 201}, "name"),
            ({"kind": ""}, "kind"),
            ({"kind": "no spaces"}, "kind"),
            ({"priority": -1}, "priority"),
            ({"labels": {"bad key": "v"}}, "labels['bad key']"),
            ({"payload": {"n": float("nan")}}, "payload"),
            ({"schedule": Schedule.cron_expression("61 * * * *")}, "schedule.cron"),
            ({"schedule": Schedule.cron_expression("0 9 * * MON-FRI", "Mars/Olympus")}, "schedule.timezone"),
            ({"schedule": Schedule.cron_expression("0 9 * * *", "America")}, "schedule.timezone"),
            ({"schedule": Schedule.cron_expression("0 9 * * *", "Etc")}, "schedule.timezone"),
            ({"schedule": Schedule.cron_expression("0 9 * * *", "Europe/" + "x" * 300)}, "schedule.timezone"),
            ({"schedule": Schedule.every(timedelta(0))}, "schedule.interval"),
            ({"schedule": Schedule(kind=types.ScheduleKind.ONCE)}, "schedule.run_at"),
            ({"schedule": Schedule.once(datetime(2030, 1, 1))}, "schedule.run_at"),
            ({"retry_policy": RetryPolicy(max_attempts=-1)}, "retry_policy.max_attempts"),
            (
                {"retry_policy": RetryPolicy(initial_backoff=timedelta(seconds=-1))},
                "retry_policy.initial_backoff",
            ),
            ({"retry_policy": RetryPolicy(multiplier=0.5)}, "retry_policy.multiplier"),
            ({"request_id": "r" * 201}, "request_id"),
            ({"request_id": "r\x00"}, "request_id"),
            ({"name": "a\x00b"}, "name"),
            ({"labels": {"k": "v\x00"}}, "labels['k']"),
            ({"payload": {"a": "\x00"}}, "payload"),
            ({"schedule": Schedule.cron_expression("0 0 30 2 *")}, "schedule.cron"),
            ({"schedule": Schedule.every(timedelta(days=400))}, "schedule.interval"),
            ({"schedule": Schedule.once(datetime(9999, 1, 1, tzinfo=UTC))}, "schedule.run_at"),
            (
                {"retry_policy": RetryPolicy(initial_backoff=timedelta(days=30))},
                "retry_policy.initial_backoff",
            ),
            ({"retry_policy": RetryPolicy(max_backoff=timedelta(days=30))}, "retry_policy.max_backoff"),
        ],
    )
    def test_invalid_fields_are_named_and_nothing_is_stored(
        self, service: JobService, member: Actor, delivered: list[Event], spec: dict[str, object], field: str
    ) -> None:
        fields: dict[str, object] = {"name": "ok", "kind": "k", **spec}
        result = service.create_job(member, JobCreate(**fields))

        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None
        assert field in [v.field for v in result.error.field_violations]
        assert delivered == []
        assert service.list_jobs(member).value.items == []

    def test_a_viewer_may_not_create(
        self, service: JobService, viewer: Actor, delivered: list[Event]
    ) -> None:
        assert_failed(service.create_job(viewer, JobCreate(name="n", kind="k")), ErrorCode.PERMISSION_DENIED)
        assert delivered == []

    def test_a_retry_with_the_same_request_id_returns_the_first_job(
        self, service: JobService, member: Actor, other_member: Actor, delivered: list[Event]
    ) -> None:
        first = service.create_job(member, JobCreate(name="n", kind="k", request_id="r-1")).value
        again = service.create_job(member, JobCreate(name="n", kind="k", request_id="r-1")).value
        someone_else = service.create_job(other_member, JobCreate(name="n", kind="k", request_id="r-1")).value

        assert again == first
        assert someone_else.id != first.id
        assert types_of(delivered) == ["job.created", "job.created"]


class TestGetJob:
    def test_owner_admin_operator_and_viewer_read_it(
        self,
        service: JobService,
        make_job: JobMaker,
        member: Actor,
        admin: Actor,
        operator: Actor,
        viewer: Actor,
    ) -> None:
        job = make_job()
        for reader in (member, admin, operator, viewer):
            assert service.get_job(reader, job.id).value == job

    def test_missing_other_tenant_and_unreadable_are_all_not_found(
        self, service: JobService, make_job: JobMaker, stranger: Actor, other_member: Actor, member: Actor
    ) -> None:
        job = make_job()
        assert_failed(service.get_job(member, uuid.uuid4()), ErrorCode.NOT_FOUND)
        assert_failed(service.get_job(stranger, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.get_job(other_member, job.id), ErrorCode.NOT_FOUND)


class TestUpdateJob:
    def test_changes_fields_and_names_them_in_the_event(
        self, service: JobService, make_job: JobMaker, member: Actor, delivered: list[Event]
    ) -> None:
        job = make_job(labels={"a": "1"})
        delivered.clear()

        updated = service.update_job(
            member, job.id, JobUpdate(name="renamed", labels={"a": "1"}, priority=9), expected_version=1
        ).value

        assert (updated.name, updated.priority, updated.version) == ("renamed", 9, 2)
        assert service.get_job(member, job.id).value == updated
        assert types_of(delivered) == ["job.updated"]
        assert isinstance(delivered[0].payload, types.JobEvent)
        assert delivered[0].payload.changed_fields == ("name", "priority")

    def test_the_seed_signature_takes_its_keyword_arguments(
        self, service: JobService, make_job: JobMaker, member: Actor
    ) -> None:
        job = make_job()
        updated = service.update_job(actor=member, job_id=job.id, updates=JobUpdate(name="renamed"))
        assert updated.value.name == "renamed"

    def test_an_update_that_changes_nothing_emits_nothing(
        self, service: JobService, make_job: JobMaker, member: Actor, delivered: list[Event]
    ) -> None:
        job = make_job()
        delivered.clear()
        assert service.update_job(member, job.id, JobUpdate(name=job.name)).value == job
        assert delivered == []

    def test_a_stale_version_is_aborted(
        self, service: JobService, make_job: JobMaker, member: Actor, delivered: list[Event]
    ) -> None:
        job = make_job()
        service.update_job(member, job.id, JobUpdate(name="one"))
        delivered.clear()

        result = service.update_job(member, job.id, JobUpdate(name="two"), expected_version=1)

        assert_failed(result, ErrorCode.ABORTED)
        assert result.error is not None
        assert result.error.details["current_version"] == 2
        assert service.get_job(member, job.id).value.name == "one"
        assert delivered == []

    def test_invalid_update_names_the_field(
        self, service: JobService, make_job: JobMaker, member: Actor
    ) -> None:
        job = make_job()
        result = service.update_job(member, job.id, JobUpdate(name="", schedule=Schedule.every(timedelta(0))))
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None
        assert {v.field for v in result.error.field_violations} == {"name", "schedule.interval"}
        assert service.get_job(member, job.id).value == job

    def test_permissions(
        self,
        service: JobService,
        make_job: JobMaker,
        viewer: Actor,
        operator: Actor,
        other_member: Actor,
        stranger: Actor,
        admin: Actor,
    ) -> None:
        job = make_job()
        change = JobUpdate(name="x")
        assert_failed(service.update_job(viewer, job.id, change), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.update_job(operator, job.id, change), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.update_job(other_member, job.id, change), ErrorCode.NOT_FOUND)
        assert_failed(service.update_job(stranger, job.id, change), ErrorCode.NOT_FOUND)
        assert service.update_job(admin, job.id, change).ok

    def test_a_new_schedule_on_a_scheduled_job_moves_its_next_run(
        self, service: JobService, job_in: Callable[[JobStatus], Job], member: Actor, clock: FakeClock
    ) -> None:
        job = job_in(JobStatus.SCHEDULED)
        updated = service.update_job(
            member, job.id, JobUpdate(schedule=Schedule.every(timedelta(minutes=10)))
        ).value
        assert updated.next_run_at == clock.now() + timedelta(minutes=10)

    def test_a_scheduled_job_cannot_lose_its_schedule(
        self, service: JobService, job_in: Callable[[JobStatus], Job], member: Actor
    ) -> None:
        job = job_in(JobStatus.SCHEDULED)
        assert_failed(
            service.update_job(member, job.id, JobUpdate(schedule=None)), ErrorCode.FAILED_PRECONDITION
        )

    def test_a_pending_job_can_lose_its_schedule(
        self, service: JobService, make_job: JobMaker, member: Actor, operator: Actor, clock: FakeClock
    ) -> None:
        job = make_job(schedule=Schedule.every(timedelta(hours=1)))
        service.start_job(operator, job.id)
        service.cancel_job(operator, job.id)
        assert service.update_job(member, job.id, JobUpdate(schedule=None)).value.schedule is None


class TestDeleteJob:
    def test_deletes_the_job_and_its_runs(
        self,
        service: JobService,
        job_in: Callable[[JobStatus], Job],
        member: Actor,
        delivered: list[Event],
    ) -> None:
        job = job_in(JobStatus.SUCCEEDED)
        delivered.clear()

        assert service.delete_job(member, job.id).value.id == job.id

        assert_failed(service.get_job(member, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.get_job_history(member, job.id), ErrorCode.NOT_FOUND)
        assert types_of(delivered) == ["job.deleted"]

    def test_a_running_job_must_be_cancelled_first(
        self, service: JobService, job_in: Callable[[JobStatus], Job], member: Actor, delivered: list[Event]
    ) -> None:
        job = job_in(JobStatus.RUNNING)
        delivered.clear()
        assert_failed(service.delete_job(member, job.id), ErrorCode.FAILED_PRECONDITION)
        assert service.get_job(member, job.id).ok
        assert delivered == []

    def test_permissions_and_versions(
        self,
        service: JobService,
        make_job: JobMaker,
        member: Actor,
        viewer: Actor,
        other_member: Actor,
        stranger: Actor,
    ) -> None:
        job = make_job()
        assert_failed(service.delete_job(viewer, job.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.delete_job(other_member, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.delete_job(stranger, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.delete_job(member, job.id, expected_version=7), ErrorCode.ABORTED)
        assert service.delete_job(member, job.id, expected_version=1).ok


class TestListJobs:
    def test_pages_cover_every_job_once_in_creation_order(
        self, service: JobService, make_job: JobMaker, member: Actor
    ) -> None:
        made = [make_job().id for _ in range(7)]
        seen: list[uuid.UUID] = []
        token = ""
        pages = 0
        while True:
            page = service.list_jobs(member, page_size=3, page_token=token).value
            seen += [job.id for job in page.items]
            pages += 1
            token = page.next_page_token
            if not token:
                break
        assert seen == made
        assert pages == 3

    def test_filters(
        self,
        service: JobService,
        make_job: JobMaker,
        operator: Actor,
        other_member: Actor,
        clock: FakeClock,
    ) -> None:
        a = make_job(kind="a", labels={"env": "prod", "team": "x"})
        clock.advance(timedelta(hours=1))
        b = make_job(kind="b", labels={"env": "dev"})
        c = make_job(by=other_member, kind="a", labels={"env": "prod"})
        service.start_job(operator, c.id)

        def ids(filters: JobFilters) -> list[uuid.UUID]:
            return [job.id for job in service.list_jobs(operator, filters).value.items]

        assert ids(JobFilters()) == [a.id, b.id, c.id]
        assert ids(JobFilters(statuses=frozenset({JobStatus.RUNNING}))) == [c.id]
        assert ids(JobFilters(owner="bob")) == [c.id]
        assert ids(JobFilters(kinds=frozenset({"a"}))) == [a.id, c.id]
        assert ids(JobFilters(labels={"env": "prod"})) == [a.id, c.id]
        assert ids(JobFilters(labels={"env": "prod", "team": "x"})) == [a.id]
        assert ids(JobFilters(created_after=clock.now())) == [b.id, c.id]
        assert ids(JobFilters(created_before=clock.now())) == [a.id]

    def test_members_see_their_own_and_tenants_are_apart(
        self,
        service: JobService,
        make_job: JobMaker,
        member: Actor,
        other_member: Actor,
        stranger: Actor,
        viewer: Actor,
    ) -> None:
        mine = make_job()
        theirs = make_job(by=other_member)
        assert [j.id for j in service.list_jobs(member).value.items] == [mine.id]
        assert service.list_jobs(member, JobFilters(owner="bob")).value.items == []
        assert [j.id for j in service.list_jobs(viewer).value.items] == [mine.id, theirs.id]
        assert service.list_jobs(stranger).value.items == []

    @pytest.mark.parametrize(
        ("size", "token", "field"),
        [(-1, "", "page_size"), (10, "garbage!", "page_token"), (10, "eyJrIjoxfQ", "page_token")],
    )
    def test_bad_page_requests_name_the_field(
        self, service: JobService, member: Actor, size: int, token: str, field: str
    ) -> None:
        result = service.list_jobs(member, page_size=size, page_token=token)
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None
        assert result.error.field_violations[0].field == field

    def test_a_token_is_bound_to_its_filter(
        self, service: JobService, make_job: JobMaker, member: Actor
    ) -> None:
        for _ in range(3):
            make_job()
        token = service.list_jobs(member, page_size=1).value.next_page_token
        assert token
        result = service.list_jobs(member, JobFilters(kinds=frozenset({"x"})), page_size=1, page_token=token)
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)

    def test_text_filters_refuse_nul_characters(self, service: JobService, operator: Actor) -> None:
        result = service.list_jobs(operator, JobFilters(owner="a\x00", kinds=frozenset({"k\x00"})))
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None
        assert {v.field for v in result.error.field_violations} == {"filter.owner", "filter.kinds"}
        assert_failed(
            service.get_pending_jobs(operator, kinds=frozenset({"\x00"})), ErrorCode.INVALID_ARGUMENT
        )

    def test_bad_filters_are_invalid(self, service: JobService, member: Actor, clock: FakeClock) -> None:
        later = clock.now() + timedelta(days=1)
        result = service.list_jobs(member, JobFilters(created_after=later, created_before=clock.now()))
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert_failed(service.list_jobs(member, JobFilters(labels={"": "x"})), ErrorCode.INVALID_ARGUMENT)


# Every (status, call) pair the status machine refuses, with the call's target status.
ILLEGAL = [
    (status, call)
    for status in JobStatus
    for call in (JobCall.SCHEDULE, JobCall.START, JobCall.COMPLETE, JobCall.FAIL, JobCall.CANCEL)
    if (status, call) not in types.TRANSITIONS
]


class TestIllegalTransitions:
    @pytest.mark.parametrize(("status", "call"), ILLEGAL, ids=[f"{s}-{c}" for s, c in ILLEGAL])
    def test_is_failed_precondition_naming_both_states(
        self,
        service: JobService,
        job_in: Callable[[JobStatus], Job],
        admin: Actor,
        delivered: list[Event],
        status: JobStatus,
        call: JobCall,
    ) -> None:
        job = job_in(status)
        delivered.clear()
        calls = {
            JobCall.SCHEDULE: lambda: service.schedule_job(admin, job.id, Schedule.every(timedelta(hours=1))),
            JobCall.START: lambda: service.start_job(admin, job.id),
            JobCall.COMPLETE: lambda: service.complete_job(admin, job.id),
            JobCall.FAIL: lambda: service.fail_job(admin, job.id, "boom"),
            JobCall.CANCEL: lambda: service.cancel_job(admin, job.id),
        }

        result = calls[call]()

        assert_failed(result, ErrorCode.FAILED_PRECONDITION)
        assert result.error is not None
        target = types.CALL_TARGET[call]
        assert result.error.details == {"current_state": status, "attempted_state": target}
        assert f"from {status} to {target}" in result.error.message
        assert service.get_job(admin, job.id).value == job
        assert delivered == []


class TestStartJob:
    def test_starts_a_pending_job_and_opens_a_run(
        self,
        service: JobService,
        make_job: JobMaker,
        operator: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        job = make_job()
        delivered.clear()

        started = service.start_job(operator, job.id, expected_version=1).value

        assert (started.status, started.attempt_count, started.started_at) == (
            JobStatus.RUNNING,
            1,
            clock.now(),
        )
        assert types_of(delivered) == ["job.started", "job.status_changed"]
        payload = delivered[1].payload
        assert isinstance(payload, types.JobStatusEvent)
        assert (payload.old_status, payload.new_status, payload.attempt) == (
            JobStatus.PENDING,
            JobStatus.RUNNING,
            1,
        )
        runs = service.get_job_history(operator, job.id).value.items
        assert [(r.attempt, r.status, r.started_by) for r in runs] == [(1, RunStatus.RUNNING, "worker")]
        assert payload.run_id == runs[0].id

    def test_permissions(
        self, service: JobService, make_job: JobMaker, member: Actor, viewer: Actor, stranger: Actor
    ) -> None:
        job = make_job()
        assert_failed(service.start_job(member, job.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.start_job(viewer, job.id), ErrorCode.PERMISSION_DENIED)
        assert_failed(service.start_job(stranger, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.start_job(member, uuid.uuid4()), ErrorCode.NOT_FOUND)

    def test_a_stale_claim_is_aborted(self, service: JobService, make_job: JobMaker, operator: Actor) -> None:
        job = make_job()
        assert service.start_job(operator, job.id, expected_version=1).ok
        assert_failed(service.start_job(operator, job.id, expected_version=1), ErrorCode.ABORTED)


class TestCompleteJob:
    def test_a_one_off_job_succeeds_and_its_run_keeps_the_result(
        self,
        service: JobService,
        job_in: Callable[[JobStatus], Job],
        operator: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        job = job_in(JobStatus.RUNNING)
        delivered.clear()
        clock.advance(timedelta(seconds=30))

        done = service.complete_job(operator, job.id, JobResult(data={"rows": 3}, message="ok")).value

        assert (done.status, done.finished_at, done.result) == (
            JobStatus.SUCCEEDED,
            clock.now(),
            JobResult(data={"rows": 3}, message="ok"),
        )
        assert types_of(delivered) == ["job.succeeded", "job.status_changed"]
        payload = delivered[0].payload
        assert isinstance(payload, types.JobResultEvent)
        assert (payload.result, payload.message, payload.next_run_at) == ({"rows": 3}, "ok", None)
        (run,) = service.get_job_history(operator, job.id).value.items
        assert (run.status, run.finished_at, run.result) == (RunStatus.SUCCEEDED, clock.now(), done.result)

    def test_a_recurring_job_is_scheduled_again(
        self,
        service: JobService,
        make_job: JobMaker,
        operator: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        job = make_job(schedule=Schedule.every(timedelta(minutes=15)))
        service.start_job(operator, job.id)
        delivered.clear()

        done = service.complete_job(operator, job.id).value

        assert (done.status, done.next_run_at, done.attempt_count) == (
            JobStatus.SCHEDULED,
            clock.now() + timedelta(minutes=15),
            0,
        )
        assert types_of(delivered) == ["job.succeeded", "job.status_changed"]

    def test_invalid_result_and_permissions(
        self, service: JobService, job_in: Callable[[JobStatus], Job], operator: Actor, member: Actor
    ) -> None:
        job = job_in(JobStatus.RUNNING)
        bad = service.complete_job(operator, job.id, JobResult(data={"x": float("inf")}))
        assert_failed(bad, ErrorCode.INVALID_ARGUMENT)
        assert_failed(service.complete_job(member, job.id), ErrorCode.PERMISSION_DENIED)


class TestFailJob:
    def test_retries_with_exponential_backoff_then_fails(
        self,
        service: JobService,
        make_job: JobMaker,
        operator: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        policy = RetryPolicy(max_attempts=3, initial_backoff=timedelta(seconds=1), multiplier=2.0)
        job = make_job(retry_policy=policy)
        delivered.clear()

        outcomes = []
        for _ in range(3):
            service.start_job(operator, job.id)
            failed = service.fail_job(operator, job.id, "boom").value
            outcomes.append((failed.status, failed.next_run_at and failed.next_run_at - clock.now()))

        assert outcomes == [
            (JobStatus.SCHEDULED, timedelta(seconds=1)),
            (JobStatus.SCHEDULED, timedelta(seconds=2)),
            (JobStatus.FAILED, None),
        ]
        failures = [e.payload for e in delivered if e.type == "job.failed"]
        assert all(isinstance(p, types.JobErrorEvent) for p in failures)
        assert [(p.attempt, p.will_retry) for p in failures] == [(1, True), (2, True), (3, False)]
        assert failures[0].next_attempt_at == clock.now() + timedelta(seconds=1)
        runs = service.get_job_history(operator, job.id).value.items
        assert [(r.attempt, r.status, r.error) for r in runs] == [
            (n, RunStatus.FAILED, "boom") for n in (3, 2, 1)
        ]
        final = service.get_job(operator, job.id).value
        assert (final.last_error, final.attempt_count) == ("boom", 3)

    def test_backoff_is_capped(self) -> None:
        policy = RetryPolicy(
            max_attempts=10, initial_backoff=timedelta(seconds=10), max_backoff=timedelta(seconds=25)
        )
        assert [policy.backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [10, 20, 25, 25]

    def test_a_non_retryable_failure_is_final(
        self, service: JobService, make_job: JobMaker, operator: Actor, delivered: list[Event]
    ) -> None:
        job = make_job(retry_policy=RetryPolicy(max_attempts=5))
        service.start_job(operator, job.id)
        delivered.clear()
        failed = service.fail_job(operator, job.id, "fatal", retryable=False).value
        assert failed.status is JobStatus.FAILED
        assert types_of(delivered) == ["job.failed", "job.status_changed"]

    def test_the_error_is_required(
        self, service: JobService, job_in: Callable[[JobStatus], Job], operator: Actor
    ) -> None:
        job = job_in(JobStatus.RUNNING)
        result = service.fail_job(operator, job.id, "")
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None
        assert result.error.field_violations[0].field == "error"


class TestCancelJob:
    def test_cancels_a_running_job_and_closes_its_run(
        self,
        service: JobService,
        job_in: Callable[[JobStatus], Job],
        operator: Actor,
        delivered: list[Event],
    ) -> None:
        job = job_in(JobStatus.RUNNING)
        delivered.clear()

        cancelled = service.cancel_job(operator, job.id, "no longer needed").value

        assert cancelled.status is JobStatus.CANCELLED
        assert types_of(delivered) == ["job.cancelled", "job.status_changed"]
        payload = delivered[0].payload
        assert isinstance(payload, types.JobStatusEvent)
        assert payload.reason == "no longer needed"
        (run,) = service.get_job_history(operator, job.id).value.items
        assert (run.status, run.error) == (RunStatus.CANCELLED, "no longer needed")

    def test_a_member_cancels_its_own_job_only(
        self, service: JobService, make_job: JobMaker, member: Actor, other_member: Actor, viewer: Actor
    ) -> None:
        job = make_job()
        assert_failed(service.cancel_job(other_member, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.cancel_job(viewer, job.id), ErrorCode.PERMISSION_DENIED)
        assert service.cancel_job(member, job.id).value.status is JobStatus.CANCELLED
        assert service.get_job_history(member, job.id).value.items == []

    def test_an_overlong_reason_is_invalid(
        self, service: JobService, make_job: JobMaker, member: Actor
    ) -> None:
        job = make_job()
        assert_failed(service.cancel_job(member, job.id, "x" * 1001), ErrorCode.INVALID_ARGUMENT)


class TestScheduleJob:
    def test_schedules_a_pending_job(
        self,
        service: JobService,
        make_job: JobMaker,
        operator: Actor,
        delivered: list[Event],
        clock: FakeClock,
    ) -> None:
        job = make_job()
        delivered.clear()
        at = clock.now() + timedelta(hours=2)

        scheduled = service.schedule_job(operator, job.id, Schedule.once(at)).value

        assert (scheduled.status, scheduled.next_run_at, scheduled.schedule) == (
            JobStatus.SCHEDULED,
            at,
            Schedule.once(at),
        )
        assert types_of(delivered) == ["job.scheduled", "job.status_changed"]

    def test_rescheduling_a_scheduled_job_emits_no_status_change(
        self, service: JobService, job_in: Callable[[JobStatus], Job], operator: Actor, delivered: list[Event]
    ) -> None:
        job = job_in(JobStatus.SCHEDULED)
        delivered.clear()
        assert service.schedule_job(operator, job.id, Schedule.every(timedelta(minutes=1))).ok
        assert types_of(delivered) == ["job.scheduled"]

    def test_a_finished_job_runs_again_with_its_own_schedule(
        self, service: JobService, make_job: JobMaker, operator: Actor, clock: FakeClock
    ) -> None:
        job = make_job(schedule=Schedule.cron_expression("0 9 * * *", "Europe/Berlin"))
        service.start_job(operator, job.id)
        service.cancel_job(operator, job.id)

        again = service.schedule_job(operator, job.id).value

        assert (again.status, again.attempt_count, again.finished_at) == (JobStatus.SCHEDULED, 0, None)
        # 2030-01-01 09:00 in Berlin (UTC+1) is 08:00 UTC.
        assert again.next_run_at == datetime(2030, 1, 1, 8, tzinfo=UTC)

    def test_a_job_without_schedule_needs_one(
        self, service: JobService, make_job: JobMaker, operator: Actor
    ) -> None:
        result = service.schedule_job(operator, make_job().id)
        assert_failed(result, ErrorCode.INVALID_ARGUMENT)
        assert result.error is not None
        assert result.error.field_violations[0].field == "schedule"

    def test_bad_schedule_and_permissions(
        self, service: JobService, make_job: JobMaker, member: Actor
    ) -> None:
        job = make_job()
        assert_failed(
            service.schedule_job(member, job.id, Schedule.cron_expression("nope")), ErrorCode.INVALID_ARGUMENT
        )
        assert_failed(
            service.schedule_job(member, job.id, Schedule.every(timedelta(hours=1))),
            ErrorCode.PERMISSION_DENIED,
        )


class TestWorkerQueries:
    def test_pending_jobs_come_by_priority_then_age(
        self, service: JobService, make_job: JobMaker, operator: Actor, job_in: Callable[[JobStatus], Job]
    ) -> None:
        low = make_job(priority=1)
        high = make_job(priority=10)
        other_kind = make_job(priority=5, kind="other")
        running = job_in(JobStatus.RUNNING)

        assert [j.id for j in service.get_pending_jobs(operator).value] == [high.id, other_kind.id, low.id]
        kinds = frozenset({"report.build"})
        assert [j.id for j in service.get_pending_jobs(operator, kinds=kinds).value] == [high.id, low.id]
        assert [j.id for j in service.get_pending_jobs(operator, limit=1).value] == [high.id]
        assert [j.id for j in service.get_running_jobs(operator).value] == [running.id]

    def test_members_see_their_own_and_limits_are_checked(
        self, service: JobService, make_job: JobMaker, member: Actor, other_member: Actor, make_actor: object
    ) -> None:
        mine = make_job()
        make_job(by=other_member)
        assert [j.id for j in service.get_pending_jobs(member).value] == [mine.id]
        assert_failed(service.get_pending_jobs(member, limit=0), ErrorCode.INVALID_ARGUMENT)
        assert_failed(service.get_running_jobs(member, limit=5000), ErrorCode.INVALID_ARGUMENT)

    def test_an_actor_without_roles_sees_nothing(
        self, service: JobService, make_job: JobMaker, make_actor: Callable[..., Actor]
    ) -> None:
        make_job()
        nobody = make_actor()
        assert service.get_pending_jobs(nobody).value == []
        assert service.list_jobs(nobody).value.items == []


class TestJobHistory:
    def test_runs_come_newest_first_in_pages(
        self, service: JobService, make_job: JobMaker, operator: Actor, member: Actor, stranger: Actor
    ) -> None:
        job = make_job(retry_policy=RetryPolicy(max_attempts=5))
        for _ in range(3):
            service.start_job(operator, job.id)
            service.fail_job(operator, job.id, "again")

        first = service.get_job_history(member, job.id, page_size=2).value
        second = service.get_job_history(member, job.id, page_size=2, page_token=first.next_page_token).value

        assert [r.attempt for r in first.items] == [3, 2]
        assert [r.attempt for r in second.items] == [1]
        assert second.next_page_token == ""
        assert_failed(service.get_job_history(stranger, job.id), ErrorCode.NOT_FOUND)
        assert_failed(service.get_job_history(member, job.id, page_token="x"), ErrorCode.INVALID_ARGUMENT)


class _BlindToRequestIds:
    """A writing unit of work whose request-id lookups see nothing, as a racing retry would."""

    def __init__(self, inner: UnitOfWork) -> None:
        self._inner = inner

    def __enter__(self) -> UnitOfWork:
        work = self._inner.__enter__()
        work.jobs.get_by_request_id = lambda *_: None
        work.tasks.get_by_request_id = lambda *_: None
        return work

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)


def blind_to_request_ids(uow: UnitOfWorkFactory) -> UnitOfWorkFactory:
    """A factory whose writing units of work cannot see earlier request ids."""

    def build(*, read_only: bool = False) -> UnitOfWork:
        work = uow(read_only=read_only)
        return work if read_only else _BlindToRequestIds(work)

    return build


class TestConcurrentIdempotentCreate:
    def test_losing_the_insert_race_answers_with_the_winners_job(
        self, uow: UnitOfWorkFactory, clock: FakeClock, member: Actor, delivered: list[Event]
    ) -> None:
        """A retry that looked before the first insert committed hits the unique constraint."""
        first = JobService(uow=uow, clock=clock).create_job(
            member, JobCreate(name="n", kind="k", request_id="dup")
        )

        racer = JobService(uow=blind_to_request_ids(uow), clock=clock)
        again = racer.create_job(member, JobCreate(name="n", kind="k", request_id="dup"))

        assert again.value == first.value
        assert [e.type for e in delivered] == ["job.created"]


class _LosesRaces:
    """A unit of work factory whose first ``losses`` writes of a job lose to a concurrent change."""

    def __init__(self, inner: UnitOfWorkFactory, losses: int) -> None:
        self._inner = inner
        self.losses = losses

    def __call__(self, *, read_only: bool = False) -> UnitOfWork:
        work = self._inner(read_only=read_only)
        if read_only:
            return work
        factory = self

        class Racing:
            def __enter__(self) -> UnitOfWork:
                entered = work.__enter__()
                save = entered.jobs.save

                def losing_save(job: Job, *, expected_version: int) -> None:
                    if factory.losses > 0:
                        factory.losses -= 1
                        raise StaleVersionError("job", job.id, expected_version, expected_version + 1)
                    save(job, expected_version=expected_version)

                entered.jobs.save = losing_save  # type: ignore[method-assign]
                return entered

            def __exit__(self, *exc: object) -> None:
                work.__exit__(*exc)  # type: ignore[arg-type]

        return Racing()  # type: ignore[return-value]


class TestUnconditionalCalls:
    def test_a_call_without_etag_is_tried_again_after_losing_a_race(
        self, uow: UnitOfWorkFactory, clock: FakeClock, make_job: JobMaker, operator: Actor
    ) -> None:
        job = make_job()
        racing = JobService(uow=_LosesRaces(uow, losses=2), clock=clock)

        started = racing.start_job(operator, job.id)

        assert started.ok, started.error
        assert started.value.status is JobStatus.RUNNING
        assert len(racing.get_job_history(operator, job.id).value.items) == 1

    def test_a_call_with_an_etag_fails_at_once(
        self, uow: UnitOfWorkFactory, clock: FakeClock, make_job: JobMaker, operator: Actor
    ) -> None:
        job = make_job()
        losing = _LosesRaces(uow, losses=1)

        result = JobService(uow=losing, clock=clock).start_job(operator, job.id, expected_version=job.version)

        assert_failed(result, ErrorCode.ABORTED)
        assert losing.losses == 0

    def test_retries_are_bounded(
        self, uow: UnitOfWorkFactory, clock: FakeClock, make_job: JobMaker, operator: Actor
    ) -> None:
        job = make_job()
        losing = _LosesRaces(uow, losses=100)

        assert_failed(JobService(uow=losing, clock=clock).start_job(operator, job.id), ErrorCode.ABORTED)
        assert losing.losses == 100 - UNCONDITIONAL_ATTEMPTS


class TestRunRetention:
    def test_old_finished_runs_beyond_the_newest_are_pruned_in_batches(
        self, service: JobService, make_job: JobMaker, operator: Actor, clock: FakeClock
    ) -> None:
        job = make_job(schedule=Schedule.every(timedelta(hours=1)))
        other = make_job()
        service.start_job(operator, other.id)
        for _ in range(5):
            service.run_job_now(operator, job.id)
            service.start_job(operator, job.id)
            service.complete_job(operator, job.id)
            clock.advance(timedelta(hours=1))
        finished = [r.finished_at for r in service.get_job_history(operator, job.id).value.items]

        # Finished 5 h, 4 h, 3 h, 2 h and 1 h ago: the newest two stay whatever their age, the
        # third is young enough, the other two go.
        assert service.prune_runs(keep=2, older_than=timedelta(hours=3, minutes=30), batch=1) == 2

        kept = service.get_job_history(operator, job.id).value.items
        assert [r.finished_at for r in kept] == finished[:3]
        assert len(service.get_job_history(operator, other.id).value.items) == 1  # running: kept
        assert service.prune_runs(keep=2, older_than=timedelta(hours=3, minutes=30)) == 0


class TestStorageFailures:
    def test_reads_and_changes_alike_answer_unavailable_when_the_database_is_away(
        self, member: Actor, clock: FakeClock
    ) -> None:
        from core.common.errors import StorageUnavailableError

        def away(*, read_only: bool = False) -> UnitOfWork:
            raise StorageUnavailableError("connection refused")

        service = JobService(uow=away, clock=clock)
        lost = service.get_job(member, uuid.uuid4())
        assert lost.code is ErrorCode.UNAVAILABLE
        assert lost.reason.message == "the database is unavailable; retry shortly"  # no driver text
        assert service.list_jobs(member).code is ErrorCode.UNAVAILABLE
        assert service.create_job(member, JobCreate(name="n", kind="k")).code is ErrorCode.UNAVAILABLE
        assert service.cancel_job(member, uuid.uuid4()).code is ErrorCode.UNAVAILABLE
