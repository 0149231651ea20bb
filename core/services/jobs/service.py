"""JobService: the job lifecycle, its permissions, its runs and its events."""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Final, Never, TypeVar

from core.common import pagination, validation
from core.common.actor import Actor, system_actor
from core.common.clock import Clock, SystemClock
from core.common.errors import guarded_change
from core.common.ids import new_id
from core.common.pagination import Page
from core.common.result import ErrorCode, FieldViolation, OperationResult
from core.messaging.events import Event, Payload, new_event
from core.messaging.reactions import Reaction
from core.services import changes
from core.services.jobs import permissions, stats, types
from core.services.jobs.types import (
    Claim,
    Job,
    JobCall,
    JobCreate,
    JobEventType,
    JobFilters,
    JobResult,
    JobRun,
    JobStatus,
    JobUpdate,
    Lease,
    RunStatus,
    Schedule,
)
from core.services.unit_of_work import Fence, UnitOfWork, UnitOfWorkFactory

ERROR_MAX = 10_000
REASON_MAX = 1_000

# What a lifecycle step decides: the job after it, the runs it opens or closes, its events.
Step = OperationResult[changes.Change[Job]]

C = TypeVar("C")

JOBS: Final[changes.Kind[Job]] = changes.Kind(
    "job", lambda uow: uow.jobs, permissions.can_read, permissions.can
)


class JobService:
    """Create, read, change and run jobs on behalf of an actor; every method checks permissions."""

    def __init__(self, *, uow: UnitOfWorkFactory, clock: Clock | None = None) -> None:
        self._uow = uow
        self._clock = clock or SystemClock()

    # -- CRUD -------------------------------------------------------------------------

    def create_job(self, actor: Actor, job: JobCreate) -> OperationResult[Job]:
        """Create a job owned by the actor: PENDING, or SCHEDULED when it has a schedule.

        A retry with the same ``request_id`` by the same actor returns the first job.
        """
        violations = types.field_violations(
            name=job.name,
            kind=job.kind,
            description=job.description,
            payload=job.payload,
            labels=job.labels,
            priority=job.priority,
            schedule=job.schedule,
            retry_policy=job.retry_policy,
        )
        if job.request_id is not None:
            violations += validation.text(
                "request_id", job.request_id, max_length=types.REQUEST_ID_MAX, required=True
            )
        if violations:
            return OperationResult.invalid(*violations)
        if not permissions.may_ever(actor, permissions.CREATE):
            return OperationResult.denied("create", "job", "in tenant " + actor.tenant, actor.id)
        return changes.create_once(self._uow, JOBS, actor, job.request_id, lambda: self._create(actor, job))

    def _create(self, actor: Actor, spec: JobCreate) -> OperationResult[Job]:
        now = self._clock.now()
        with self._uow() as uow:
            if spec.request_id is not None:
                existing = uow.jobs.get_by_request_id(actor.tenant, actor.id, spec.request_id)
                if existing is not None:
                    return OperationResult.success(existing)
            job = Job(
                id=new_id(),
                tenant=actor.tenant,
                name=spec.name,
                description=spec.description,
                kind=spec.kind,
                payload=dict(spec.payload),
                labels=dict(spec.labels),
                priority=spec.priority,
                owner=actor.id,
                schedule=spec.schedule,
                retry_policy=spec.retry_policy or types.RetryPolicy(),
                status=JobStatus.SCHEDULED if spec.schedule else JobStatus.PENDING,
                next_run_at=spec.schedule.first_fire(now) if spec.schedule else None,
                created_at=now,
                updated_at=now,
                request_id=spec.request_id,
            )
            uow.jobs.add(job)
            uow.events.append(self._event(JobEventType.CREATED, types.job_event(job), actor, job))
            if job.next_run_at is not None:
                uow.events.append(self._scheduled_event(actor, job))
            uow.commit()
        return OperationResult.success(job)

    @changes.reading("job")
    def get_job(self, actor: Actor, job_id: uuid.UUID) -> OperationResult[Job]:
        """The job, if the actor may read it."""
        with self._uow(read_only=True) as uow:
            job = uow.jobs.get(actor.tenant, job_id)
        if job is None or not permissions.can_read(actor, job):
            return OperationResult.not_found("job", job_id)
        return OperationResult.success(job)

    def update_job(
        self, actor: Actor, job_id: uuid.UUID, updates: JobUpdate, *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Change the fields ``updates`` sets; emits job.updated naming the changed fields."""
        asked = updates.changes()
        violations = types.field_violations(**{k: v for k, v in asked.items() if k != "schedule"})
        if asked.get("schedule") is not None:
            violations += asked["schedule"].violations()
        if violations:
            return OperationResult.invalid(*violations)

        def decide(job: Job, _: None, now: datetime) -> Step:
            changed = {name: value for name, value in asked.items() if getattr(job, name) != value}
            if not changed:
                return _unchanged(job)
            if "schedule" in changed and job.status is JobStatus.SCHEDULED:
                schedule: Schedule | None = changed["schedule"]
                if schedule is None:
                    return OperationResult.failed_precondition(
                        f"job {job.id} is SCHEDULED: cancel it before removing its schedule",
                        current_state=job.status,
                    )
                changed["next_run_at"] = schedule.first_fire(now)
            after = job.changed(at=now, **changed)
            fields = tuple(sorted(name for name in changed if name != "next_run_at"))
            return self._decided(
                job, after, (JobEventType.UPDATED, types.job_event(after, fields)), actor=actor
            )

        return self._change(actor, job_id, permissions.UPDATE, expected_version, decide, changes.nothing_more)

    def delete_job(
        self, actor: Actor, job_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Delete a job that is not RUNNING, with its runs; returns it as it was."""

        def attempt() -> OperationResult[Job]:
            with self._uow() as uow:
                job = uow.jobs.get(actor.tenant, job_id)
                refused = changes.refusal(JOBS, actor, job_id, job, permissions.DELETE, expected_version)
                if refused is not None:
                    return refused
                assert job is not None
                if job.status is JobStatus.RUNNING:
                    return OperationResult.failed_precondition(
                        f"job {job.id} is RUNNING: cancel it before deleting it", current_state=job.status
                    )
                uow.jobs.delete(job)
                uow.events.append(self._event(JobEventType.DELETED, types.job_event(job), actor, job))
                uow.commit()
            return OperationResult.success(job)

        return guarded_change("job", job_id, attempt, unconditional=expected_version is None)

    @changes.reading("job")
    def list_jobs(
        self,
        actor: Actor,
        filters: JobFilters | None = None,
        *,
        page_size: int = 0,
        page_token: str = "",
    ) -> OperationResult[Page[Job]]:
        """The jobs the actor may read that match ``filters``, one keyset page at a time."""
        filters = filters or JobFilters()
        violations = list(_filter_violations(filters))
        if violations:
            return OperationResult.invalid(*violations)
        if permissions.reads_only_own(actor):
            if filters.owner not in (None, actor.id):
                return OperationResult.success(Page(items=[]))
            filters = dataclasses.replace(filters, owner=actor.id)
        elif not permissions.may_ever(actor, permissions.READ):
            return OperationResult.success(Page(items=[]))
        fingerprint = pagination.fingerprint(actor.tenant, *filters.fingerprint_parts())
        try:
            request = pagination.page_request(page_size, page_token, fingerprint)
        except pagination.InvalidPageRequest as exc:
            return OperationResult.invalid_argument(exc.field, exc.description)
        with self._uow(read_only=True) as uow:
            rows = uow.jobs.list(actor.tenant, filters, after=request.after, limit=request.size + 1)
        return OperationResult.success(pagination.make_page(rows, request, fingerprint))

    # -- lifecycle --------------------------------------------------------------------

    def schedule_job(
        self,
        actor: Actor,
        job_id: uuid.UUID,
        schedule: Schedule | None = None,
        *,
        expected_version: int | None = None,
    ) -> OperationResult[Job]:
        """Schedule the job by ``schedule`` (or the one it has); it becomes SCHEDULED."""
        if schedule is not None:
            violations = list(schedule.violations())
            if violations:
                return OperationResult.invalid(*violations)

        def decide(job: Job, _: None, now: datetime) -> Step:
            chosen = schedule or job.schedule
            if chosen is None:
                return OperationResult.invalid_argument("schedule", "is required: the job has no schedule")
            rerun = job.status in types.TERMINAL
            moved = job.transition(
                JobCall.SCHEDULE,
                JobStatus.SCHEDULED,
                at=now,
                schedule=chosen,
                next_run_at=chosen.first_fire(now),
                attempt_count=0 if rerun else job.attempt_count,
                finished_at=None if rerun else job.finished_at,
            )
            if not moved.ok:
                return moved.as_failure()
            after = moved.value
            return self._decided(
                job,
                after,
                (JobEventType.SCHEDULED, self._schedule_payload(after)),
                actor=actor,
                announce_status=True,
            )

        return self._change(
            actor, job_id, permissions.SCHEDULE, expected_version, decide, changes.nothing_more
        )

    def start_job(
        self, actor: Actor, job_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Claim a PENDING or SCHEDULED job: it becomes RUNNING and a run opens.

        Two workers racing for one job: exactly one wins, the other gets ABORTED.
        """

        def decide(job: Job, _: None, now: datetime) -> Step:
            started = _started(job, actor, now)
            if not started.ok:
                return started.as_failure()
            after, run = started.value
            return self._decided(
                job,
                after,
                (JobEventType.STARTED, types.status_event(job, after, run=run)),
                actor=actor,
                announce_status=True,
                runs=(OpenRun(run),),
            )

        return self._change(actor, job_id, permissions.START, expected_version, decide, changes.nothing_more)

    def claim_jobs(
        self,
        actor: Actor,
        *,
        kinds: frozenset[str] = frozenset(),
        labels: Mapping[str, str] | None = None,
        max_jobs: int = 1,
        lease_duration: timedelta = types.DEFAULT_LEASE,
        worker_id: str = "",
    ) -> OperationResult[list[Claim]]:
        """Claim up to ``max_jobs`` PENDING jobs of ``kinds`` (any kind when empty) carrying
        ``labels``, highest priority first, then oldest.

        Each claimed job becomes RUNNING with a new run that holds a lease until
        ``lease_duration`` from now: the worker keeps it with heartbeat_job, names its run
        when it completes or fails the job, and loses it to the reaper when it lapses. Two
        claims never take the same job. An empty list means nothing was runnable; waiting
        for work is the caller's (the server's long poll).
        """
        labels = labels or {}
        violations = [v for kind in sorted(kinds) for v in _kind_violations(kind)]
        violations += validation.labels("labels", labels)
        violations += validation.int_range("max_jobs", max_jobs, 1, types.MAX_CLAIM)
        violations += types.lease_violations("lease_duration", lease_duration)
        violations += validation.text("worker_id", worker_id, max_length=types.NAME_MAX)
        if violations:
            return OperationResult.invalid(*violations)
        if not permissions.may_ever(actor, permissions.CLAIM):
            return OperationResult.denied(permissions.CLAIM, "job", "in tenant " + actor.tenant, actor.id)
        owner = actor.id if permissions.claims_only_own(actor) else None

        def attempt() -> OperationResult[list[Claim]]:
            claims = []
            now = self._clock.now()
            with self._uow() as uow:
                candidates = uow.jobs.claimable(
                    actor.tenant, kinds=kinds, labels=labels, owner=owner, limit=max_jobs
                )
                for job in candidates:
                    started = _started(job, actor, now, worker=worker_id, lease=lease_duration)
                    if not started.ok:  # pragma: no cover - claimable returns PENDING jobs only
                        continue
                    after, run = started.value
                    uow.jobs.add_run(run)
                    uow.jobs.save(after, expected_version=job.version)
                    payload = types.status_event(job, after, run=run, reason=f"claimed by {run.worker}")
                    uow.events.append(
                        self._event(JobEventType.STARTED, payload, actor, after),
                        self._event(JobEventType.STATUS_CHANGED, payload, actor, after),
                    )
                    claims.append(Claim(job=after, run=run))
                if claims:
                    uow.commit()
            return OperationResult.success(claims)

        return guarded_change("job", None, attempt, unconditional=True)

    def release_claims(self, actor: Actor, claims: Sequence[Claim]) -> list[Job]:
        """Give back jobs whose claim never reached its caller (the call was cancelled after
        the claim committed): each returns to PENDING with its attempt restored, unless its
        run no longer holds it. The run closes CANCELLED, saying why; the jobs released."""
        released = []
        for claim in claims:

            def decide(job: Job, held: JobRun | None, now: datetime, claim: Claim = claim) -> Step:
                if held is None or held.id != claim.run.id:
                    return _unchanged(job)
                attempts = max(0, job.attempt_count - 1)
                moved = job.transition(
                    JobCall.RELEASE,
                    JobStatus.PENDING,
                    at=now,
                    attempt_count=attempts,
                    started_at=job.started_at if attempts else None,
                    cancel_requested=False,
                )
                if not moved.ok:  # pragma: no cover - a RUNNING job can always be released
                    return moved.as_failure()
                reason = "released: the claiming call ended before it received the job"
                run, closing = _closing(job, held, now, RunStatus.CANCELLED, error=reason)
                payload = types.status_event(job, moved.value, run=run, reason=reason)
                return self._decided(
                    job, moved.value, (JobEventType.STATUS_CHANGED, payload), actor=actor, runs=closing
                )

            result = self._change(actor, claim.job.id, permissions.CLAIM, None, decide, _open_run)
            if result.ok and result.value.status is JobStatus.PENDING:
                released.append(result.value)
        return released

    def heartbeat_job(
        self,
        actor: Actor,
        job_id: uuid.UUID,
        run_id: uuid.UUID,
        *,
        lease_duration: timedelta | None = None,
        progress: float | None = None,
        progress_message: str | None = None,
    ) -> OperationResult[Lease]:
        """Keep the lease of a claimed run: it now lasts ``lease_duration`` (the claim's when
        None) from now. The answer says whether cancellation was requested, so the worker
        can stop. ``progress`` (percent) and ``progress_message``, when given, are recorded
        on the job and announced with job.progressed.

        A run that no longer holds the job (reaped, finished, or another run took over) is
        refused with FAILED_PRECONDITION naming the job's current run: the worker must stop.
        """
        violations = (
            [] if lease_duration is None else types.lease_violations("lease_duration", lease_duration)
        )
        if progress is not None and not 0.0 <= progress <= 100.0:
            violations.append(FieldViolation("progress", "must be a percentage between 0 and 100"))
        if progress_message is not None:
            violations += validation.text(
                "progress_message", progress_message, max_length=types.PROGRESS_MESSAGE_MAX
            )
        if violations:
            return OperationResult.invalid(*violations)

        def attempt() -> OperationResult[Lease]:
            now = self._clock.now()
            with self._uow() as uow:
                job = uow.jobs.get(actor.tenant, job_id)
                refused = changes.refusal(JOBS, actor, job_id, job, permissions.HEARTBEAT, None)
                if refused is not None:
                    return refused
                assert job is not None
                held = uow.jobs.open_run(job.id)
                if held is None or held.id != run_id or not held.claimed:
                    return _lost(job, run_id, held)
                extension = lease_duration or held.lease_duration or types.DEFAULT_LEASE
                run = uow.jobs.extend_lease(job.id, run_id, until=now + extension, at=now)
                if run is None:  # pragma: no cover - closed between the read and the write
                    return _lost(job, run_id, None)
                after = job
                reported = {
                    "progress": job.progress if progress is None else progress,
                    "progress_message": job.progress_message
                    if progress_message is None
                    else progress_message,
                }
                if reported != {"progress": job.progress, "progress_message": job.progress_message}:
                    after = job.changed(at=now, **reported)
                    uow.jobs.save(after, expected_version=job.version)
                    payload = types.JobProgressEvent(
                        job_id=job.id,
                        owner=job.owner,
                        run_id=run.id,
                        progress=after.progress,
                        message=after.progress_message,
                        version=after.version,
                    )
                    uow.events.append(self._event(JobEventType.PROGRESSED, payload, actor, after))
                uow.commit()
            return OperationResult.success(Lease(job=after, run=run, cancel_requested=after.cancel_requested))

        return guarded_change("job", job_id, attempt, unconditional=True)

    def complete_job(
        self,
        actor: Actor,
        job_id: uuid.UUID,
        result: JobResult | None = None,
        *,
        run_id: uuid.UUID | None = None,
        expected_version: int | None = None,
    ) -> OperationResult[Job]:
        """Finish the running attempt successfully: SUCCEEDED, or SCHEDULED again if it recurs.

        A claimed run must be named by ``run_id``; a run that lost the job is refused
        (FAILED_PRECONDITION, naming the current run)."""
        result = result or JobResult()
        violations = list(validation.json_object("result.data", result.data))
        violations += validation.text("result.message", result.message, max_length=ERROR_MAX)
        if violations:
            return OperationResult.invalid(*violations)

        def decide(job: Job, open_run: JobRun | None, now: datetime) -> Step:
            held = _holding_run(job, open_run, run_id)
            if not held.ok:
                return held.as_failure()
            recurs = job.schedule is not None and job.schedule.recurring
            if recurs:
                assert job.schedule is not None
                next_run = job.schedule.next_fire(now)
                moved = job.transition(
                    JobCall.COMPLETE,
                    JobStatus.SCHEDULED,
                    at=now,
                    result=result,
                    next_run_at=next_run,
                    attempt_count=0,
                )
            else:
                moved = job.transition(
                    JobCall.COMPLETE, JobStatus.SUCCEEDED, at=now, result=result, finished_at=now
                )
            if not moved.ok:
                return moved.as_failure()
            after = _finished(moved.value)
            run, closing = _closing(job, held.value, now, RunStatus.SUCCEEDED, result=result)
            payload = types.JobResultEvent(
                job_id=job.id,
                owner=job.owner,
                run_id=run.id,
                attempt=run.attempt,
                result=dict(result.data),
                message=result.message,
                version=after.version,
                next_run_at=after.next_run_at,
            )
            return self._decided(
                job, after, (JobEventType.SUCCEEDED, payload), actor=actor, announce_status=True, runs=closing
            )

        return self._change(actor, job_id, permissions.COMPLETE, expected_version, decide, _open_run)

    def fail_job(
        self,
        actor: Actor,
        job_id: uuid.UUID,
        error: str,
        *,
        retryable: bool = True,
        run_id: uuid.UUID | None = None,
        expected_version: int | None = None,
    ) -> OperationResult[Job]:
        """Finish the running attempt with ``error``.

        When the retry policy leaves an attempt (and ``retryable``), the job is SCHEDULED
        after an exponential backoff; otherwise it is FAILED. job.failed says which. A job
        whose cancellation was requested ends CANCELLED instead (job.cancelled). A claimed
        run must be named by ``run_id``, as for complete_job.
        """
        violations = list(validation.text("error", error, max_length=ERROR_MAX, required=True))
        if violations:
            return OperationResult.invalid(*violations)

        def decide(job: Job, open_run: JobRun | None, now: datetime) -> Step:
            held = _holding_run(job, open_run, run_id)
            if not held.ok:
                return held.as_failure()
            return self._failed(
                job, held.value, now, error, retryable=retryable, actor=actor, event=JobEventType.FAILED
            )

        return self._change(actor, job_id, permissions.FAIL, expected_version, decide, _open_run)

    def cancel_job(
        self, actor: Actor, job_id: uuid.UUID, reason: str = "", *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Cancel a PENDING, SCHEDULED or RUNNING job; a running attempt closes CANCELLED.

        A job a worker claimed is not taken from it: the cancellation is requested
        (job.cancel_requested), the worker learns it at its next heartbeat and ends the job
        with fail_job, which then ends CANCELLED; if it never does, the reaper cancels the
        job once the lease lapses.
        """
        violations = list(validation.text("reason", reason, max_length=REASON_MAX))
        if violations:
            return OperationResult.invalid(*violations)

        def decide(job: Job, run: JobRun | None, now: datetime) -> Step:
            if run is not None and run.claimed:
                if job.cancel_requested:
                    return _unchanged(job)
                after = job.changed(at=now, cancel_requested=True)
                payload = types.status_event(job, after, run=run, reason=reason)
                return self._decided(job, after, (JobEventType.CANCEL_REQUESTED, payload), actor=actor)
            return self._cancelled(job, run, now, reason, actor=actor)

        return self._change(actor, job_id, permissions.CANCEL, expected_version, decide, _open_run)

    # -- worker queries ---------------------------------------------------------------

    @changes.reading("job")
    def get_pending_jobs(
        self, actor: Actor, *, kinds: frozenset[str] = frozenset(), limit: int = 100
    ) -> OperationResult[list[Job]]:
        """PENDING jobs the actor may read, highest priority first: what workers poll."""
        return self._by_status(actor, JobStatus.PENDING, kinds, limit)

    @changes.reading("job")
    def get_running_jobs(
        self, actor: Actor, *, kinds: frozenset[str] = frozenset(), limit: int = 100
    ) -> OperationResult[list[Job]]:
        """RUNNING jobs the actor may read."""
        return self._by_status(actor, JobStatus.RUNNING, kinds, limit)

    def _by_status(
        self, actor: Actor, status: JobStatus, kinds: frozenset[str], limit: int
    ) -> OperationResult[list[Job]]:
        violations = [v for kind in kinds for v in validation.text("kinds", kind, max_length=types.NAME_MAX)]
        if not 0 < limit <= pagination.MAX_PAGE_SIZE:
            violations.append(FieldViolation("limit", f"must be between 1 and {pagination.MAX_PAGE_SIZE}"))
        if violations:
            return OperationResult.invalid(*violations)
        if not permissions.may_ever(actor, permissions.READ):
            return OperationResult.success([])
        owner = actor.id if permissions.reads_only_own(actor) else None
        with self._uow(read_only=True) as uow:
            jobs = uow.jobs.list_by_status(actor.tenant, status, owner=owner, kinds=kinds, limit=limit)
        return OperationResult.success(list(jobs))

    @changes.reading("job")
    def get_job_history(
        self, actor: Actor, job_id: uuid.UUID, *, page_size: int = 0, page_token: str = ""
    ) -> OperationResult[Page[JobRun]]:
        """The runs of a job, newest first."""
        fingerprint = pagination.fingerprint("runs", actor.tenant, job_id)
        try:
            request = pagination.page_request(page_size, page_token, fingerprint)
        except pagination.InvalidPageRequest as exc:
            return OperationResult.invalid_argument(exc.field, exc.description)
        with self._uow(read_only=True) as uow:
            job = uow.jobs.get(actor.tenant, job_id)
            if job is None or not permissions.can_read(actor, job):
                return OperationResult.not_found("job", job_id)
            runs = uow.jobs.runs(job_id, before=request.after, limit=request.size + 1)
        return OperationResult.success(pagination.make_page(runs, request, fingerprint))

    @changes.reading("job")
    def get_job_stats(
        self,
        actor: Actor,
        *,
        window: timedelta = stats.DEFAULT_WINDOW,
        bucket_width: timedelta = stats.DEFAULT_BUCKET,
    ) -> OperationResult[stats.JobStats]:
        """How many jobs the actor may read are in each status, and how their runs ended in
        each interval of ``bucket_width`` covering the last ``window``."""
        violations = list(stats.violations(window, bucket_width))
        if violations:
            return OperationResult.invalid(*violations)
        now = self._clock.now()
        intervals = stats.Window.ending_at(now, window, bucket_width)
        by_status: Mapping[JobStatus, int] = {}
        counted: Sequence[tuple[int, RunStatus, int]] = ()
        if permissions.may_ever(actor, permissions.READ):
            owner = actor.id if permissions.reads_only_own(actor) else None
            with self._uow(read_only=True) as uow:
                by_status = uow.jobs.count_by_status(actor.tenant, owner=owner)
                counted = uow.jobs.count_finished_runs(
                    actor.tenant, owner=owner, since=intervals.since, width=bucket_width
                )
        return OperationResult.success(
            stats.JobStats(
                as_of=now,
                by_status=stats.all_statuses(by_status),
                runs=intervals.assemble(counted),
                bucket_width=bucket_width,
            )
        )

    # -- schedule control ----------------------------------------------------------------

    def pause_job(
        self, actor: Actor, job_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Keep the job's schedule but stop the scheduler firing it; emits job.updated."""
        return self._set_paused(actor, job_id, paused=True, expected_version=expected_version)

    def resume_job(
        self, actor: Actor, job_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Let the scheduler fire the job again; a run missed while paused fires once."""
        return self._set_paused(actor, job_id, paused=False, expected_version=expected_version)

    def _set_paused(
        self, actor: Actor, job_id: uuid.UUID, *, paused: bool, expected_version: int | None
    ) -> OperationResult[Job]:
        def decide(job: Job, _: None, now: datetime) -> Step:
            if job.paused is paused:
                return _unchanged(job)
            after = job.changed(at=now, paused=paused)
            return self._decided(
                job, after, (JobEventType.UPDATED, types.job_event(after, ("paused",))), actor=actor
            )

        return self._change(
            actor, job_id, permissions.SCHEDULE, expected_version, decide, changes.nothing_more
        )

    def run_job_now(
        self, actor: Actor, job_id: uuid.UUID, *, expected_version: int | None = None
    ) -> OperationResult[Job]:
        """Promote a SCHEDULED job (paused or not) to PENDING at once; emits job.status_changed."""

        def decide(job: Job, _: None, now: datetime) -> Step:
            if job.status is JobStatus.PENDING:
                return _unchanged(job)
            return self._promoted(job, now, actor, reason="run now")

        return self._change(
            actor, job_id, permissions.SCHEDULE, expected_version, decide, changes.nothing_more
        )

    def promote_due_jobs(self, *, limit: int = 100, fence: Fence | None = None) -> list[Job]:
        """The scheduler's step: every due, unpaused SCHEDULED job becomes PENDING, once.

        Each job moves in a transaction of its own, as the system actor of its tenant; a
        job changed concurrently is left for the next step. ``fence`` (the leader's check of
        its lease, run inside each transaction) refuses the promotions of a leader that
        lost its lease while stalled; the step then stops.
        """
        now = self._clock.now()
        with self._uow(read_only=True) as uow:
            due = uow.jobs.due(now, limit=limit)
        promoted = []
        for candidate in due:
            actor = system_actor(candidate.tenant)
            result = self._change(
                actor,
                candidate.id,
                permissions.SCHEDULE,
                None,
                self._promote_if_due(actor),
                changes.nothing_more,
                first=_fenced(fence),
            )
            if result.code is ErrorCode.FAILED_PRECONDITION and fence is not None:
                break  # leadership lost: the next leader promotes the rest
            if result.ok and result.value.version != candidate.version:
                promoted.append(result.value)
        return promoted

    def reap_expired_leases(self, *, limit: int = 100, fence: Fence | None = None) -> list[Job]:
        """The scheduler's other step: every run whose lease lapsed loses its job.

        The job fails as if its worker had failed it (job.lease_expired, then the retry
        policy: SCHEDULED for another attempt or FAILED), or ends CANCELLED when its
        cancellation was requested. A heartbeat or a finish that lands first wins; so does
        ``fence``, as in promote_due_jobs.
        """
        now = self._clock.now()
        with self._uow(read_only=True) as uow:
            expired = uow.jobs.expired_runs(now, limit=limit)
        reaped = []
        for run in expired:
            actor = system_actor(run.tenant)
            result = self._change(
                actor,
                run.job_id,
                permissions.FAIL,
                None,
                self._reap_if_expired(actor, run),
                _open_run,
                first=_fenced(fence),
            )
            if result.code is ErrorCode.FAILED_PRECONDITION and fence is not None:
                break  # leadership lost
            if result.ok and result.value.status is not JobStatus.RUNNING:
                reaped.append(result.value)
        return reaped

    def _reap_if_expired(self, actor: Actor, expired: JobRun) -> changes.Decide[Job, JobRun | None]:
        def decide(job: Job, held: JobRun | None, at: datetime) -> Step:
            if held is None or held.id != expired.id:
                return _unchanged(job)
            assert held.lease_expires_at is not None
            deadline = held.lease_expires_at.isoformat()
            lapsed = f"the lease of run {held.id} held by {held.worker} expired at {deadline}"
            if job.cancel_requested:
                return self._cancelled(job, held, at, f"cancelled: {lapsed}", actor=actor, reaping=True)
            return self._failed(
                job,
                held,
                at,
                lapsed,
                retryable=True,
                actor=actor,
                event=JobEventType.LEASE_EXPIRED,
                reaping=True,
            )

        return decide

    def prune_runs(self, *, keep: int, older_than: timedelta, batch: int = 500) -> int:
        """Retention of runs: delete the finished runs of each job beyond its newest ``keep``
        that finished more than ``older_than`` ago, in batches of ``batch`` (each its own
        transaction); how many went. Open runs are never touched."""
        horizon = self._clock.now() - older_than
        pruned = 0
        while True:
            with self._uow() as uow:
                deleted = uow.jobs.prune_runs(keep=keep, finished_before=horizon, limit=batch)
                uow.commit()
            pruned += deleted
            if deleted < batch:
                return pruned

    def _promote_if_due(self, actor: Actor) -> changes.Decide[Job, None]:
        def decide(job: Job, _: None, at: datetime) -> Step:
            still_due = job.status is JobStatus.SCHEDULED and not job.paused
            if not still_due or job.next_run_at is None or job.next_run_at > at:
                return _unchanged(job)
            return self._promoted(job, at, actor, reason="due")

        return decide

    def _promoted(self, job: Job, now: datetime, actor: Actor, *, reason: str) -> Step:
        moved = job.transition(JobCall.PROMOTE, JobStatus.PENDING, at=now)
        if not moved.ok:
            return moved.as_failure()
        after = moved.value
        payload = types.status_event(job, after, reason=reason)
        return self._decided(job, after, (JobEventType.STATUS_CHANGED, payload), actor=actor)

    # -- what tasks ask of jobs ------------------------------------------------------------

    def can_read_job(self, work: UnitOfWork, actor: Actor, job_id: uuid.UUID) -> bool:
        """True when ``job_id`` is a job of the actor's tenant it may read, read in ``work``
        (TaskService asks before it puts a task in a job or lists a job's tasks)."""
        job = work.jobs.get(actor.tenant, job_id)
        return job is not None and permissions.can_read(actor, job)

    # -- reactions to task events (durable, driven from the event log) ---------------------

    def reactions(self) -> list[Reaction[UnitOfWork]]:
        """Keep every job's task counters true as its tasks come, go and change status."""
        patterns = ("task.created", "task.deleted", "task.linked", "task.unlinked", "task.status_changed")
        return [Reaction.of("jobs.count-tasks", patterns, self._on_task_event)]

    def _on_task_event(self, work: UnitOfWork, event: Event) -> None:
        """Recount the tasks of the job the event concerns; emit job.updated when the counts moved."""
        # A link event names the job in its envelope, also when the task leaves it.
        job_id = event.job_id
        if job_id is None:
            return
        job = work.jobs.get(event.tenant, job_id)
        if job is None:
            return
        total, done = work.tasks.count_by_job(event.tenant, job_id)
        if (total, done) == (job.task_total, job.task_done):
            return
        after = job.changed(at=self._clock.now(), task_total=total, task_done=done)
        work.jobs.save(after, expected_version=job.version)
        payload = types.job_event(after, ("task_done", "task_total"))
        work.events.append(self._event(JobEventType.UPDATED, payload, system_actor(event.tenant), after))

    # -- shared steps -------------------------------------------------------------------

    def _change(
        self,
        actor: Actor,
        job_id: uuid.UUID,
        action: str,
        expected_version: int | None,
        step: changes.Decide[Job, C],
        load: changes.Load[Job, C],
        *,
        first: Callable[[UnitOfWork], OperationResult[Never] | None] | None = None,
    ) -> OperationResult[Job]:
        """The shared change (core/services/changes.py) of one job through ``step``."""
        return changes.change(
            self._uow, self._clock, JOBS, actor, job_id, action, expected_version, step, load, first
        )

    def _decided(
        self,
        before: Job,
        after: Job,
        specific: tuple[JobEventType, Payload],
        *,
        actor: Actor,
        announce_status: bool = False,
        runs: Sequence[changes.Write] = (),
    ) -> Step:
        """``before`` becomes ``after`` with the writes to its ``runs``; the step's specific
        event, and job.status_changed when ``announce_status`` and the status moved."""
        emitted = [self._event(specific[0], specific[1], actor, after)]
        if announce_status and before.status is not after.status:
            payload = specific[1]
            if not isinstance(payload, types.JobStatusEvent):
                payload = types.status_event(before, after)
            emitted.append(self._event(JobEventType.STATUS_CHANGED, payload, actor, after))
        return OperationResult.success(changes.Change.of(before, after, emitted, runs))

    def _failed(
        self,
        job: Job,
        run: JobRun | None,
        now: datetime,
        error: str,
        *,
        retryable: bool,
        actor: Actor,
        event: JobEventType,
        reaping: bool = False,
    ) -> Step:
        """The job after its running attempt failed: retried per its policy, or FAILED, or
        CANCELLED when its cancellation was requested."""
        if job.cancel_requested and job.status is JobStatus.RUNNING:
            return self._cancelled(job, run, now, error, actor=actor, reaping=reaping)
        will_retry = retryable and job.retry_policy.allows_retry(job.attempt_count)
        if will_retry:
            retry_at = now + job.retry_policy.backoff(job.attempt_count)
            moved = job.transition(
                JobCall.FAIL, JobStatus.SCHEDULED, at=now, last_error=error, next_run_at=retry_at
            )
        else:
            moved = job.transition(JobCall.FAIL, JobStatus.FAILED, at=now, last_error=error, finished_at=now)
        if not moved.ok:
            return moved.as_failure()
        after = _finished(moved.value)
        closed, closing = _closing(job, run, now, RunStatus.FAILED, error=error, reaping=reaping)
        payload = types.JobErrorEvent(
            job_id=job.id,
            owner=job.owner,
            run_id=closed.id,
            attempt=closed.attempt,
            error=error,
            will_retry=will_retry,
            version=after.version,
            next_attempt_at=after.next_run_at if will_retry else None,
        )
        return self._decided(job, after, (event, payload), actor=actor, announce_status=True, runs=closing)

    def _cancelled(
        self,
        job: Job,
        run: JobRun | None,
        now: datetime,
        reason: str,
        *,
        actor: Actor,
        reaping: bool = False,
    ) -> Step:
        moved = job.transition(JobCall.CANCEL, JobStatus.CANCELLED, at=now, finished_at=now, next_run_at=None)
        if not moved.ok:
            return moved.as_failure()
        after = _finished(moved.value)
        closed, closing = _closing(job, run, now, RunStatus.CANCELLED, error=reason or None, reaping=reaping)
        payload = types.status_event(job, after, run=closed, reason=reason)
        return self._decided(
            job, after, (JobEventType.CANCELLED, payload), actor=actor, announce_status=True, runs=closing
        )

    def _event(self, event_type: JobEventType, payload: Payload, actor: Actor, job: Job) -> Event:
        return new_event(
            event_type, payload, actor=actor, clock=self._clock, resource_id=job.id, job_id=job.id
        )

    def _scheduled_event(self, actor: Actor, job: Job) -> Event:
        return self._event(JobEventType.SCHEDULED, self._schedule_payload(job), actor, job)

    @staticmethod
    def _schedule_payload(job: Job) -> types.JobScheduleEvent:
        assert job.schedule is not None and job.next_run_at is not None
        return types.JobScheduleEvent(
            job_id=job.id,
            owner=job.owner,
            schedule_kind=job.schedule.kind,
            next_run_at=job.next_run_at,
            version=job.version,
        )


@dataclasses.dataclass(frozen=True, slots=True)
class OpenRun:
    """Insert ``run``, which a start opened."""

    run: JobRun

    def apply(self, work: UnitOfWork) -> bool:
        """Insert the run; always done."""
        work.jobs.add_run(self.run)
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class CloseRun:
    """Write ``run`` as its step closed it."""

    run: JobRun

    def apply(self, work: UnitOfWork) -> bool:
        """Write the closed run; always done (the job's version check guards the step)."""
        work.jobs.save_run(self.run)
        return True


@dataclasses.dataclass(frozen=True, slots=True)
class CloseLapsedRun:
    """The reaper's close of ``run``: only while it is still RUNNING with its lease lapsed at
    ``at``, so a heartbeat or a finish that commits first wins."""

    run: JobRun
    at: datetime

    def apply(self, work: UnitOfWork) -> bool:
        """Write the closed run if its lease is still lapsed; False (nothing written) if not."""
        return work.jobs.close_expired_run(self.run, at=self.at)


def _unchanged(job: Job) -> Step:
    """A step that changes nothing: nothing written, no event."""
    return OperationResult.success(changes.Change.nothing(job))


def _open_run(work: UnitOfWork, job: Job) -> JobRun | None:
    """The job's open run, which only a RUNNING job has (no read otherwise)."""
    return work.jobs.open_run(job.id) if job.status is JobStatus.RUNNING else None


def _fenced(fence: Fence | None) -> Callable[[UnitOfWork], OperationResult[Never] | None]:
    """The scheduler's fence as the first check of its change: FAILED_PRECONDITION once the
    leader no longer holds its lease (it then stops its step)."""

    def check(work: UnitOfWork) -> OperationResult[Never] | None:
        if fence is not None and not fence(work):
            return OperationResult.failed_precondition("the scheduler no longer holds its lease")
        return None

    return check


def _closing(
    job: Job,
    run: JobRun | None,
    now: datetime,
    status: RunStatus,
    *,
    result: JobResult | None = None,
    error: str | None = None,
    reaping: bool = False,
) -> tuple[JobRun, tuple[changes.Write, ...]]:
    """``run`` closed with ``status``, and the write that closes it (conditional when reaping)."""
    if run is None:
        # A job that never started (cancelled while PENDING) has no run to close: the event
        # names one that is never stored.
        never = JobRun(
            id=new_id(),
            job_id=job.id,
            tenant=job.tenant,
            attempt=job.attempt_count,
            started_by="",
            started_at=now,
            finished_at=now,
            status=status,
        )
        return never, ()
    closed = dataclasses.replace(run, status=status, finished_at=now, result=result, error=error)
    return closed, (CloseLapsedRun(closed, now) if reaping else CloseRun(closed),)


def _started(
    job: Job,
    actor: Actor,
    now: datetime,
    *,
    worker: str = "",
    lease: timedelta | None = None,
) -> OperationResult[tuple[Job, JobRun]]:
    """The job RUNNING with a new run: one with a lease when a worker claimed it."""
    moved = job.transition(
        JobCall.START,
        JobStatus.RUNNING,
        at=now,
        attempt_count=job.attempt_count + 1,
        started_at=now,
        next_run_at=None,
        cancel_requested=False,
        progress=None,
        progress_message="",
    )
    if not moved.ok:
        return moved.as_failure()
    after = moved.value
    run = JobRun(
        id=new_id(),
        job_id=job.id,
        tenant=job.tenant,
        attempt=after.attempt_count,
        started_by=actor.id,
        started_at=now,
        worker=(worker or actor.id) if lease is not None else "",
        lease_expires_at=None if lease is None else now + lease,
        heartbeat_at=None if lease is None else now,
        lease_duration=lease,
    )
    return OperationResult.success((after, run))


def _finished(job: Job) -> Job:
    """The job once its running attempt ended: no cancellation pending any more."""
    return dataclasses.replace(job, cancel_requested=False) if job.cancel_requested else job


def _holding_run(job: Job, held: JobRun | None, run_id: uuid.UUID | None) -> OperationResult[JobRun | None]:
    """The job's open run ``held``, when the caller may finish it: a claimed run must be
    named by ``run_id``, and a named run must be the one holding the job."""
    if run_id is not None:
        if held is None or held.id != run_id:
            return _lost(job, run_id, held)
    elif held is not None and held.claimed:
        return OperationResult.failed_precondition(
            f"job {job.id} is claimed by run {held.id} (worker {held.worker}): name its run_id",
            current_run_id=str(held.id),
        )
    return OperationResult.success(held)


def _lost(job: Job, run_id: uuid.UUID, held: JobRun | None) -> OperationResult[Never]:
    """FAILED_PRECONDITION for a run that no longer holds ``job``, naming the one that does."""
    if held is None:
        current = f"the job is {job.status} with no run holding it"
    else:
        current = f"run {held.id} holds it now"
    return OperationResult.failed_precondition(
        f"run {run_id} no longer holds job {job.id}: {current}",
        current_run_id=str(held.id) if held else "",
        current_state=job.status,
    )


def _kind_violations(kind: str) -> list[FieldViolation]:
    if types.KIND.match(kind):
        return []
    return [FieldViolation("kinds", f"{kind[:100]!r} is not a job kind")]


def _filter_violations(filters: JobFilters) -> Sequence[FieldViolation]:
    found = list(validation.labels("filter.labels", filters.labels))
    found += validation.optional_text("filter.owner", filters.owner, max_length=types.NAME_MAX)
    for kind in filters.kinds:
        found += validation.text("filter.kinds", kind, max_length=types.NAME_MAX)
    if filters.created_after and filters.created_before and filters.created_after > filters.created_before:
        found.append(FieldViolation("filter.created_before", "must not be before created_after"))
    return found
