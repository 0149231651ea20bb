"""Job protobuf messages <-> job domain types."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jobtask.v1 import jobs_pb2

from core.common.updates import UNSET
from core.services.jobs.stats import JobStats
from core.services.jobs.types import (
    Claim,
    Job,
    JobCreate,
    JobFilters,
    JobResult,
    JobRun,
    JobStatus,
    JobUpdate,
    RetryPolicy,
    Schedule,
    ScheduleKind,
)
from server.conversions.common import (
    InvalidRequest,
    enum_from_proto,
    enum_to_proto,
    etag,
    from_duration,
    from_struct,
    from_timestamp,
    optional_time,
    request_paths,
    set_time,
    to_duration,
    to_struct,
    to_timestamp,
)

STATUS_PREFIX = "JOB_STATUS_"

# The core's names of schedule fields, as the Schedule message names them.
_SCHEDULE_NAMES = {
    "schedule.cron": "schedule.cron.expression",
    "schedule.timezone": "schedule.cron.time_zone",
}
JOB_PATHS = request_paths("job.", _SCHEDULE_NAMES)  # CreateJob, UpdateJob: fields of `job`
SCHEDULE_PATHS = request_paths("", _SCHEDULE_NAMES)  # ScheduleJob: `schedule` at the top
LIST_PATHS = request_paths()  # ListJobs: its filters are the request's own fields
RUN_STATUS_PREFIX = "JOB_RUN_STATUS_"


def status_to_proto(status: JobStatus) -> Any:
    """The proto JobStatus of a domain status."""
    return enum_to_proto(status, jobs_pb2.JobStatus, STATUS_PREFIX)


def status_from_proto(field: str, number: int) -> JobStatus:
    """The domain status of a proto JobStatus; INVALID_ARGUMENT when unknown or unspecified."""
    status: JobStatus = enum_from_proto(field, number, jobs_pb2.JobStatus, JobStatus, STATUS_PREFIX)
    return status


def schedule_to_proto(schedule: Schedule) -> jobs_pb2.Schedule:
    """The proto of a schedule."""
    message = jobs_pb2.Schedule()
    if schedule.kind is ScheduleKind.ONCE:
        assert schedule.run_at is not None
        message.run_at.CopyFrom(to_timestamp(schedule.run_at))
    elif schedule.kind is ScheduleKind.CRON:
        message.cron.expression = schedule.cron or ""
        message.cron.time_zone = schedule.timezone
    else:
        assert schedule.interval is not None
        message.interval.CopyFrom(to_duration(schedule.interval))
    return message


def schedule_from_proto(message: jobs_pb2.Schedule, field: str = "schedule") -> Schedule:
    """The schedule a proto describes."""
    chosen = message.WhichOneof("spec")
    if chosen == "run_at":
        return Schedule.once(from_timestamp(message.run_at, f"{field}.run_at"))
    if chosen == "cron":
        return Schedule.cron_expression(message.cron.expression, message.cron.time_zone or "UTC")
    if chosen == "interval":
        return Schedule.every(from_duration(message.interval, f"{field}.interval"))
    raise InvalidRequest(field, "one of run_at, cron or interval is required")


def retry_policy_to_proto(policy: RetryPolicy) -> jobs_pb2.RetryPolicy:
    """The proto of a retry policy."""
    return jobs_pb2.RetryPolicy(
        max_attempts=policy.max_attempts,
        initial_backoff=to_duration(policy.initial_backoff),
        max_backoff=to_duration(policy.max_backoff),
        multiplier=policy.multiplier,
    )


def retry_policy_from_proto(message: jobs_pb2.RetryPolicy, field: str = "retry_policy") -> RetryPolicy:
    """The retry policy a proto describes; unset fields take the defaults."""
    default = RetryPolicy()
    initial, longest = default.initial_backoff, default.max_backoff
    if message.HasField("initial_backoff"):
        initial = from_duration(message.initial_backoff, f"{field}.initial_backoff")
    if message.HasField("max_backoff"):
        longest = from_duration(message.max_backoff, f"{field}.max_backoff")
    return RetryPolicy(
        max_attempts=message.max_attempts or default.max_attempts,
        initial_backoff=initial,
        max_backoff=longest,
        multiplier=message.multiplier or default.multiplier,
    )


def result_to_proto(result: JobResult) -> jobs_pb2.JobResult:
    """The proto of a job result."""
    return jobs_pb2.JobResult(data=to_struct(result.data), message=result.message)


def result_from_proto(message: jobs_pb2.JobResult) -> JobResult:
    """The job result a proto describes."""
    return JobResult(data=from_struct(message.data, "result.data"), message=message.message)


def job_to_proto(job: Job) -> jobs_pb2.Job:
    """The proto of a job."""
    message = jobs_pb2.Job(
        id=str(job.id),
        tenant=job.tenant,
        name=job.name,
        description=job.description,
        kind=job.kind,
        payload=to_struct(job.payload),
        labels=dict(job.labels),
        priority=job.priority,
        status=status_to_proto(job.status),
        owner=job.owner,
        retry_policy=retry_policy_to_proto(job.retry_policy),
        attempt_count=job.attempt_count,
        last_error=job.last_error or "",
        etag=etag(job.version),
        task_total=job.task_total,
        task_done=job.task_done,
        paused=job.paused,
        cancel_requested=job.cancel_requested,
        progress_message=job.progress_message,
    )
    if job.progress is not None:
        message.progress = job.progress
    if job.schedule is not None:
        message.schedule.CopyFrom(schedule_to_proto(job.schedule))
    if job.result is not None:
        message.result.CopyFrom(result_to_proto(job.result))
    set_time(message, "next_run_at", job.next_run_at)
    set_time(message, "create_time", job.created_at)
    set_time(message, "update_time", job.updated_at)
    set_time(message, "start_time", job.started_at)
    set_time(message, "finish_time", job.finished_at)
    return message


def job_create_from_proto(message: jobs_pb2.Job, request_id: str) -> JobCreate:
    """The JobCreate a CreateJob request asks for."""
    return JobCreate(
        name=message.name,
        kind=message.kind,
        description=message.description,
        payload=from_struct(message.payload, "job.payload"),
        labels=dict(message.labels),
        priority=message.priority,
        schedule=schedule_from_proto(message.schedule, "job.schedule")
        if message.HasField("schedule")
        else None,
        retry_policy=retry_policy_from_proto(message.retry_policy)
        if message.HasField("retry_policy")
        else None,
        request_id=request_id or None,
    )


UPDATABLE = ("name", "description", "kind", "payload", "labels", "priority", "schedule", "retry_policy")


def job_update_from_proto(message: jobs_pb2.Job, paths: list[str]) -> JobUpdate:
    """The JobUpdate of the fields an update mask names; other paths are INVALID_ARGUMENT."""
    if not paths:
        raise InvalidRequest("update_mask", f"must name at least one of {', '.join(UPDATABLE)}")
    changes: dict[str, Any] = {}
    for path in paths:
        if path not in UPDATABLE:
            raise InvalidRequest(
                "update_mask", f"{path!r} cannot be updated; updatable: {', '.join(UPDATABLE)}"
            )
        if path == "payload":
            changes[path] = from_struct(message.payload, "job.payload")
        elif path == "labels":
            changes[path] = dict(message.labels)
        elif path == "schedule":
            has = message.HasField("schedule")
            changes[path] = schedule_from_proto(message.schedule, "job.schedule") if has else None
        elif path == "retry_policy":
            changes[path] = retry_policy_from_proto(message.retry_policy, "job.retry_policy")
        else:
            changes[path] = getattr(message, path)
    return JobUpdate(**{name: changes.get(name, UNSET) for name in UPDATABLE})


def filters_from_proto(request: jobs_pb2.ListJobsRequest) -> JobFilters:
    """The JobFilters of a ListJobs request."""
    return JobFilters(
        statuses=frozenset(status_from_proto("statuses", s) for s in request.statuses),
        owner=request.owner or None,
        kinds=frozenset(request.kinds),
        labels=dict(request.labels),
        created_after=optional_time(request, "created_after"),
        created_before=optional_time(request, "created_before"),
    )


def run_to_proto(run: JobRun) -> jobs_pb2.JobRun:
    """The proto of a job run."""
    message = jobs_pb2.JobRun(
        id=str(run.id),
        job_id=str(run.job_id),
        attempt=run.attempt,
        started_by=run.started_by,
        status=enum_to_proto(run.status, jobs_pb2.JobRunStatus, RUN_STATUS_PREFIX),
        error=run.error or "",
        worker_id=run.worker,
    )
    set_time(message, "start_time", run.started_at)
    set_time(message, "finish_time", run.finished_at)
    set_time(message, "lease_expire_time", run.lease_expires_at)
    set_time(message, "heartbeat_time", run.heartbeat_at)
    if run.result is not None:
        message.result.CopyFrom(result_to_proto(run.result))
    return message


def claim_to_proto(claim: Claim) -> jobs_pb2.ClaimedJob:
    """The proto of a claimed job and its run."""
    return jobs_pb2.ClaimedJob(job=job_to_proto(claim.job), run=run_to_proto(claim.run))


def optional_duration(message: Any, field: str) -> timedelta | None:
    """The timedelta in ``message.field`` when set."""
    return from_duration(getattr(message, field), field) if message.HasField(field) else None


def stats_to_proto(counted: JobStats) -> jobs_pb2.GetJobStatsResponse:
    """The proto of job stats."""
    message = jobs_pb2.GetJobStatsResponse(
        status_counts=[
            jobs_pb2.JobStatusCount(status=status_to_proto(status), count=count)
            for status, count in counted.by_status.items()
        ],
        run_counts=[
            jobs_pb2.RunCounts(
                start_time=to_timestamp(bucket.start),
                succeeded=bucket.succeeded,
                failed=bucket.failed,
                cancelled=bucket.cancelled,
            )
            for bucket in counted.runs
        ],
    )
    set_time(message, "as_of_time", counted.as_of)
    return message
