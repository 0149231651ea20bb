"""``jobtask jobs ...``: the JobService from the command line."""

from __future__ import annotations

from datetime import datetime, timedelta

import click
from google.protobuf import duration_pb2, field_mask_pb2, timestamp_pb2
from jobtask.v1 import jobs_pb2, jobs_pb2_grpc

from server.cli import Client, json_option, parse_json_object, parse_labels, pass_client
from server.cli import output as out

STATUSES = [name.removeprefix("JOB_STATUS_") for name in jobs_pb2.JobStatus.keys()[1:]]


def stub(client: Client) -> jobs_pb2_grpc.JobServiceStub:
    return jobs_pb2_grpc.JobServiceStub(client.channel)  # type: ignore[no-untyped-call]


def show(client: Client, job: jobs_pb2.Job) -> None:
    out.emit(job, json_output=client.json_output, human=out.job_view(job))


def schedule_from(
    cron: str | None, zone: str, every: float | None, at: datetime | None
) -> jobs_pb2.Schedule | None:
    """The schedule the options describe, if any (at most one kind)."""
    given = [
        option for option, value in (("--cron", cron), ("--every", every), ("--at", at)) if value is not None
    ]
    if len(given) > 1:
        raise click.UsageError(f"give one of --cron, --every and --at (got {', '.join(given)})")
    if cron is not None:
        return jobs_pb2.Schedule(cron=jobs_pb2.CronSchedule(expression=cron, time_zone=zone))
    if every is not None:
        interval = duration_pb2.Duration()
        interval.FromTimedelta(timedelta(seconds=every))
        return jobs_pb2.Schedule(interval=interval)
    if at is not None:
        stamp = timestamp_pb2.Timestamp()
        stamp.FromDatetime(at if at.tzinfo else at.astimezone())
        return jobs_pb2.Schedule(run_at=stamp)
    return None


def schedule_options(function: click.decorators.FC) -> click.decorators.FC:
    for option in reversed(
        [
            click.option("--cron", help="five-field cron expression, e.g. '0 9 * * MON-FRI'"),
            click.option("--timezone", "zone", default="UTC", show_default=True, help="IANA zone of --cron"),
            click.option("--every", type=float, help="interval in seconds"),
            click.option("--at", type=click.DateTime(), help="run once at this time (local unless zoned)"),
        ]
    ):
        function = option(function)
    return function


@click.group()
def jobs() -> None:
    """Create, inspect and drive jobs."""


@jobs.command()
@click.option("--name", required=True)
@click.option("--kind", required=True, help="the handler a worker runs")
@click.option("--description", default="")
@click.option("--payload", help="JSON object")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE, repeatable")
@click.option("--priority", type=int, default=0, show_default=True)
@schedule_options
@click.option("--max-attempts", type=int, help="retry policy: attempts in all")
@click.option("--backoff", type=float, help="retry policy: first wait in seconds")
@click.option("--request-id", help="idempotency key: a retry returns the first job")
@json_option
@pass_client
def create(
    client: Client,
    name: str,
    kind: str,
    description: str,
    payload: str | None,
    labels: tuple[str, ...],
    priority: int,
    cron: str | None,
    zone: str,
    every: float | None,
    at: datetime | None,
    max_attempts: int | None,
    backoff: float | None,
    request_id: str | None,
) -> None:
    """Create a job."""
    job = jobs_pb2.Job(
        name=name, kind=kind, description=description, labels=parse_labels(labels), priority=priority
    )
    body = parse_json_object(payload, "--payload")
    if body is not None:
        job.payload.update(body)
    schedule = schedule_from(cron, zone, every, at)
    if schedule is not None:
        job.schedule.CopyFrom(schedule)
    if max_attempts is not None or backoff is not None:
        job.retry_policy.max_attempts = max_attempts or 0
        if backoff is not None:
            job.retry_policy.initial_backoff.FromTimedelta(timedelta(seconds=backoff))
    request = jobs_pb2.CreateJobRequest(job=job, request_id=request_id or "")
    show(client, client.call(stub(client).CreateJob, request).job)


@jobs.command()
@click.argument("job_id")
@json_option
@pass_client
def get(client: Client, job_id: str) -> None:
    """Show a job."""
    show(client, client.call(stub(client).GetJob, jobs_pb2.GetJobRequest(id=job_id)).job)


@jobs.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES, case_sensitive=False))
@click.option("--owner")
@click.option("--kind", "kinds", multiple=True)
@click.option("--label", "labels", multiple=True, help="KEY=VALUE, repeatable")
@click.option("--page-size", type=int, default=50, show_default=True)
@click.option("--page-token", default="")
@json_option
@pass_client
def list_jobs(
    client: Client,
    statuses: tuple[str, ...],
    owner: str | None,
    kinds: tuple[str, ...],
    labels: tuple[str, ...],
    page_size: int,
    page_token: str,
) -> None:
    """List jobs, a page at a time."""
    request = jobs_pb2.ListJobsRequest(
        statuses=["JOB_STATUS_" + s.upper() for s in statuses],
        owner=owner or "",
        kinds=list(kinds),
        labels=parse_labels(labels),
        page_size=page_size,
        page_token=page_token,
    )
    response = client.call(stub(client).ListJobs, request)
    out.emit(response, json_output=client.json_output, human=out.jobs_table(response.jobs))
    if response.next_page_token and not client.json_output:
        out.console.print(f"next page: --page-token {response.next_page_token}")


@jobs.command()
@click.argument("job_id")
@click.option("--name")
@click.option("--description")
@click.option("--kind")
@click.option("--payload", help="JSON object")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE; replaces all labels")
@click.option("--priority", type=int)
@click.option("--etag", default="", help="fail with ABORTED unless the job is still at this etag")
@json_option
@pass_client
def update(
    client: Client,
    job_id: str,
    name: str | None,
    description: str | None,
    kind: str | None,
    payload: str | None,
    labels: tuple[str, ...],
    priority: int | None,
    etag: str,
) -> None:
    """Change the given fields of a job."""
    job, paths = jobs_pb2.Job(id=job_id), []
    for path, value in (("name", name), ("description", description), ("kind", kind), ("priority", priority)):
        if value is not None:
            setattr(job, path, value)
            paths.append(path)
    body = parse_json_object(payload, "--payload")
    if body is not None:
        job.payload.update(body)
        paths.append("payload")
    if labels:
        job.labels.update(parse_labels(labels))
        paths.append("labels")
    if not paths:
        raise click.UsageError("nothing to update: give at least one field option")
    request = jobs_pb2.UpdateJobRequest(job=job, update_mask=field_mask_pb2.FieldMask(paths=paths), etag=etag)
    show(client, client.call(stub(client).UpdateJob, request).job)


@jobs.command()
@click.argument("job_id")
@click.option("--etag", default="")
@pass_client
def delete(client: Client, job_id: str, etag: str) -> None:
    """Delete a job (not while it runs)."""
    client.call(stub(client).DeleteJob, jobs_pb2.DeleteJobRequest(id=job_id, etag=etag))
    click.echo(f"deleted job {job_id}")


@jobs.command()
@click.argument("job_id")
@schedule_options
@click.option("--etag", default="")
@json_option
@pass_client
def schedule(
    client: Client,
    job_id: str,
    cron: str | None,
    zone: str,
    every: float | None,
    at: datetime | None,
    etag: str,
) -> None:
    """Schedule a job (by the given schedule, or the one it has)."""
    request = jobs_pb2.ScheduleJobRequest(id=job_id, etag=etag)
    chosen = schedule_from(cron, zone, every, at)
    if chosen is not None:
        request.schedule.CopyFrom(chosen)
    show(client, client.call(stub(client).ScheduleJob, request).job)


@jobs.command()
@click.argument("job_id")
@click.option("--etag", default="")
@json_option
@pass_client
def start(client: Client, job_id: str, etag: str) -> None:
    """Claim a pending or scheduled job: it becomes RUNNING."""
    show(client, client.call(stub(client).StartJob, jobs_pb2.StartJobRequest(id=job_id, etag=etag)).job)


@jobs.command()
@click.argument("job_id")
@click.option("--result", "data", help="JSON object")
@click.option("--message", default="")
@click.option("--etag", default="")
@click.option("--run-id", default="", help="the run a claim returned (required for a claimed job)")
@json_option
@pass_client
def complete(client: Client, job_id: str, data: str | None, message: str, etag: str, run_id: str) -> None:
    """Finish the running attempt successfully."""
    result = jobs_pb2.JobResult(message=message)
    body = parse_json_object(data, "--result")
    if body is not None:
        result.data.update(body)
    request = jobs_pb2.CompleteJobRequest(id=job_id, result=result, etag=etag, run_id=run_id)
    show(client, client.call(stub(client).CompleteJob, request).job)


@jobs.command()
@click.argument("job_id")
@click.option("--error", required=True, help="what went wrong")
@click.option("--permanent", is_flag=True, help="do not retry, whatever the retry policy")
@click.option("--etag", default="")
@click.option("--run-id", default="", help="the run a claim returned (required for a claimed job)")
@json_option
@pass_client
def fail(client: Client, job_id: str, error: str, permanent: bool, etag: str, run_id: str) -> None:
    """Finish the running attempt with an error (retried while the policy allows)."""
    request = jobs_pb2.FailJobRequest(id=job_id, error=error, permanent=permanent, etag=etag, run_id=run_id)
    show(client, client.call(stub(client).FailJob, request).job)


@jobs.command()
@click.option("--kind", "kinds", multiple=True, help="a kind to claim (repeatable; none: any)")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE the job must carry (repeatable)")
@click.option("--max", "max_jobs", type=int, default=1, show_default=True, help="jobs to claim at most")
@click.option("--wait", type=float, default=0.0, show_default=True, help="seconds to wait for one")
@click.option("--lease", type=float, default=30.0, show_default=True, help="seconds the lease lasts")
@click.option("--worker-id", default="", help="shown on the run [default: the actor]")
@json_option
@pass_client
def claim(
    client: Client,
    kinds: tuple[str, ...],
    labels: tuple[str, ...],
    max_jobs: int,
    wait: float,
    lease: float,
    worker_id: str,
) -> None:
    """Claim runnable jobs: each becomes RUNNING with a run holding a lease."""
    request = jobs_pb2.ClaimJobsRequest(
        kinds=list(kinds), labels=parse_labels(labels), max_jobs=max_jobs, worker_id=worker_id
    )
    request.wait.FromTimedelta(timedelta(seconds=wait))
    request.lease_duration.FromTimedelta(timedelta(seconds=lease))
    client.timeout = max(client.timeout, wait + 5.0)
    response = client.call(stub(client).ClaimJobs, request)
    out.emit(response, json_output=client.json_output, human=out.claims_table(response.jobs))


@jobs.command()
@click.argument("job_id")
@click.option("--run-id", required=True, help="the run its claim returned")
@click.option("--progress", type=float, help="percent done")
@click.option("--message", help="progress message")
@click.option("--lease", type=float, help="seconds the lease lasts from now [default: the claim's]")
@json_option
@pass_client
def heartbeat(
    client: Client, job_id: str, run_id: str, progress: float | None, message: str | None, lease: float | None
) -> None:
    """Keep a claimed job's lease; says whether cancellation was requested."""
    request = jobs_pb2.HeartbeatJobRequest(id=job_id, run_id=run_id)
    if progress is not None:
        request.progress = progress
    if message is not None:
        request.progress_message = message
    if lease is not None:
        request.lease_duration.FromTimedelta(timedelta(seconds=lease))
    response = client.call(stub(client).HeartbeatJob, request)
    human = out.fields_table(
        [
            ("cancel requested", "yes" if response.cancel_requested else "no"),
            ("lease until", out.when(response, "lease_expire_time")),
        ]
    )
    out.emit(response, json_output=client.json_output, human=human)


@jobs.command()
@click.argument("job_id")
@click.option("--reason", default="")
@click.option("--etag", default="")
@json_option
@pass_client
def cancel(client: Client, job_id: str, reason: str, etag: str) -> None:
    """Cancel a job (its open tasks follow)."""
    request = jobs_pb2.CancelJobRequest(id=job_id, reason=reason, etag=etag)
    show(client, client.call(stub(client).CancelJob, request).job)


@jobs.command()
@click.argument("job_id")
@click.option("--page-size", type=int, default=50, show_default=True)
@click.option("--page-token", default="")
@json_option
@pass_client
def runs(client: Client, job_id: str, page_size: int, page_token: str) -> None:
    """The runs of a job, newest first."""
    request = jobs_pb2.ListJobRunsRequest(job_id=job_id, page_size=page_size, page_token=page_token)
    response = client.call(stub(client).ListJobRuns, request)
    out.emit(response, json_output=client.json_output, human=out.runs_table(response.runs))


@jobs.command()
@click.option("--window", type=float, default=60.0, show_default=True, help="minutes of runs to count")
@click.option("--bucket", type=float, default=10.0, show_default=True, help="minutes per interval")
@json_option
@pass_client
def stats(client: Client, window: float, bucket: float) -> None:
    """Jobs by status, and runs finished per interval over the last WINDOW minutes."""
    request = jobs_pb2.GetJobStatsRequest()
    request.window.FromTimedelta(timedelta(minutes=window))
    request.bucket_width.FromTimedelta(timedelta(minutes=bucket))
    response = client.call(stub(client).GetJobStats, request)
    out.emit(response, json_output=client.json_output, human=out.stats_tables(response))


@jobs.command()
@click.argument("job_id")
@json_option
@pass_client
def pause(client: Client, job_id: str) -> None:
    """Keep the schedule but stop firing the job."""
    show(client, client.call(stub(client).PauseJob, jobs_pb2.PauseJobRequest(id=job_id)).job)


@jobs.command()
@click.argument("job_id")
@json_option
@pass_client
def resume(client: Client, job_id: str) -> None:
    """Let the scheduler fire the job again."""
    show(client, client.call(stub(client).ResumeJob, jobs_pb2.ResumeJobRequest(id=job_id)).job)


@jobs.command("run-now")
@click.argument("job_id")
@json_option
@pass_client
def run_now(client: Client, job_id: str) -> None:
    """Promote a scheduled job to PENDING now."""
    show(client, client.call(stub(client).RunJobNow, jobs_pb2.RunJobNowRequest(id=job_id)).job)


@jobs.command("tasks")
@click.argument("job_id")
@json_option
@pass_client
def job_tasks(client: Client, job_id: str) -> None:
    """The tasks of a job."""
    response = client.call(
        stub(client).ListJobTasks, jobs_pb2.ListJobTasksRequest(job_id=job_id, page_size=1000)
    )
    out.emit(response, json_output=client.json_output, human=out.tasks_table(response.tasks))


@jobs.command()
@click.argument("job_id")
@click.argument("task_id")
@json_option
@pass_client
def link(client: Client, job_id: str, task_id: str) -> None:
    """Put a task (and its subtasks) in a job."""
    task = client.call(stub(client).LinkTask, jobs_pb2.LinkTaskRequest(job_id=job_id, task_id=task_id)).task
    out.emit(task, json_output=client.json_output, human=out.task_view(task))


@jobs.command()
@click.argument("job_id")
@click.argument("task_id")
@json_option
@pass_client
def unlink(client: Client, job_id: str, task_id: str) -> None:
    """Take a task (and its subtasks) out of a job."""
    task = client.call(
        stub(client).UnlinkTask, jobs_pb2.UnlinkTaskRequest(job_id=job_id, task_id=task_id)
    ).task
    out.emit(task, json_output=client.json_output, human=out.task_view(task))
