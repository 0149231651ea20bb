"""How the CLI shows things: rich tables for people, JSON for scripts, one line per error."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
import grpc
from google.protobuf import json_format
from google.protobuf.message import Message
from jobtask.v1 import common_pb2, events_pb2, jobs_pb2, tasks_pb2
from rich.console import Console, Group
from rich.table import Table
from rich.tree import Tree

from server.conversions.common import from_struct
from server.errors import operation_result_of

# Wide enough not to cut ids when the output goes to a pipe or a file.
console = Console(highlight=False, width=None if sys.stdout.isatty() else 200)


def as_json(message: Message) -> str:
    """The message as JSON with the .proto field names."""
    return json_format.MessageToJson(message, preserving_proto_field_name=True, indent=2)


def emit(message: Message, *, json_output: bool, human: Any) -> None:
    """Print ``message`` as JSON, or as ``human`` (a rich renderable or text)."""
    if json_output:
        click.echo(as_json(message))
    else:
        console.print(human)


def enum_name(enum: Any, value: int, prefix: str) -> str:
    """The short name of an enum value ("PENDING" for JOB_STATUS_PENDING)."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def when(message: Any, field: str) -> str:
    """A timestamp field as ISO text, '' when unset."""
    if not message.HasField(field):
        return ""
    return str(getattr(message, field).ToDatetime().isoformat(timespec="seconds")) + "Z"


def job_status(value: int) -> str:
    return enum_name(jobs_pb2.JobStatus, value, "JOB_STATUS_")


def task_status(value: int) -> str:
    return enum_name(tasks_pb2.TaskStatus, value, "TASK_STATUS_")


def task_priority(value: int) -> str:
    return enum_name(tasks_pb2.TaskPriority, value, "TASK_PRIORITY_")


def fields_table(rows: Iterable[tuple[str, Any]]) -> Table:
    """A two-column table of the non-empty fields."""
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for name, value in rows:
        if value not in ("", None, 0, {}, []):
            table.add_row(name, str(value))
    return table


def job_view(job: jobs_pb2.Job) -> Table:
    """One job, field by field."""
    schedule = ""
    if job.HasField("schedule"):
        kind = job.schedule.WhichOneof("spec")
        if kind == "cron":
            schedule = f"cron {job.schedule.cron.expression} ({job.schedule.cron.time_zone or 'UTC'})"
        elif kind == "interval":
            schedule = f"every {job.schedule.interval.ToTimedelta()}"
        elif kind == "run_at":
            schedule = f"once at {when(job.schedule, 'run_at')}"
    return fields_table(
        [
            ("id", job.id),
            ("name", job.name),
            ("kind", job.kind),
            (
                "status",
                job_status(job.status)
                + (" (paused)" if job.paused else "")
                + (" (cancellation requested)" if job.cancel_requested else ""),
            ),
            ("progress", _progress(job)),
            ("owner", job.owner),
            ("priority", job.priority),
            ("description", job.description),
            ("labels", ", ".join(f"{k}={v}" for k, v in sorted(job.labels.items()))),
            ("payload", json.dumps(from_struct(job.payload, "payload")) if job.payload.fields else ""),
            ("schedule", schedule),
            ("next run", when(job, "next_run_at")),
            (
                "attempts",
                f"{job.attempt_count} of {job.retry_policy.max_attempts}" if job.attempt_count else "",
            ),
            ("last error", job.last_error),
            ("result", job.result.message if job.HasField("result") else ""),
            ("tasks", f"{job.task_done}/{job.task_total} done" if job.task_total else ""),
            ("created", when(job, "create_time")),
            ("updated", when(job, "update_time")),
            ("etag", job.etag),
        ]
    )


def _progress(job: jobs_pb2.Job) -> str:
    shown = f"{job.progress:g}%" if job.HasField("progress") else ""
    return " ".join(part for part in (shown, job.progress_message) if part)


def claims_table(claims: Sequence[jobs_pb2.ClaimedJob]) -> Table:
    """Claimed jobs with the run and lease each is held by."""
    table = Table("id", "name", "kind", "attempt", "run", "lease until")
    for claim in claims:
        job, run = claim.job, claim.run
        table.add_row(job.id, job.name, job.kind, str(run.attempt), run.id, when(run, "lease_expire_time"))
    return table


def jobs_table(jobs: Sequence[jobs_pb2.Job]) -> Table:
    """Jobs, one per row."""
    table = Table("id", "name", "kind", "status", "owner", "prio", "next run", "tasks")
    for job in jobs:
        tasks = f"{job.task_done}/{job.task_total}" if job.task_total else ""
        status = job_status(job.status) + (" (paused)" if job.paused else "")
        table.add_row(
            job.id, job.name, job.kind, status, job.owner, str(job.priority), when(job, "next_run_at"), tasks
        )
    return table


def runs_table(runs: Sequence[jobs_pb2.JobRun]) -> Table:
    """Job runs, newest first."""
    table = Table("attempt", "status", "started by", "started", "finished", "result / error")
    for run in runs:
        outcome = run.error or (run.result.message if run.HasField("result") else "")
        status = enum_name(jobs_pb2.JobRunStatus, run.status, "JOB_RUN_STATUS_")
        if run.status == jobs_pb2.JOB_RUN_STATUS_RUNNING and run.HasField("lease_expire_time"):
            status += f" (lease until {when(run, 'lease_expire_time')})"
        table.add_row(
            str(run.attempt),
            status,
            run.started_by
            + (f" on {run.worker_id}" if run.worker_id and run.worker_id != run.started_by else ""),
            when(run, "start_time"),
            when(run, "finish_time"),
            outcome,
        )
    return table


def stats_tables(stats: jobs_pb2.GetJobStatsResponse) -> Group:
    """Jobs by status, then finished runs per interval."""
    statuses = Table("status", "jobs")
    for counted in stats.status_counts:
        statuses.add_row(job_status(counted.status), str(counted.count))
    runs = Table("from", "succeeded", "failed", "cancelled")
    for bucket in stats.run_counts:
        counts = (bucket.succeeded, bucket.failed, bucket.cancelled)
        runs.add_row(when(bucket, "start_time"), *(str(count) for count in counts))
    return Group(statuses, runs)


def task_view(task: tasks_pb2.Task) -> Table:
    """One task, field by field."""
    return fields_table(
        [
            ("id", task.id),
            ("title", task.title),
            ("status", task_status(task.status)),
            ("priority", task_priority(task.priority)),
            ("owner", task.owner),
            ("assignee", task.assignee),
            ("parent", task.parent_id),
            ("job", task.job_id),
            ("due", when(task, "due_time")),
            ("description", task.description),
            ("labels", ", ".join(f"{k}={v}" for k, v in sorted(task.labels.items()))),
            ("cancel reason", task.cancel_reason),
            ("created", when(task, "create_time")),
            ("etag", task.etag),
        ]
    )


def tasks_table(tasks: Sequence[tasks_pb2.Task]) -> Table:
    """Tasks, one per row."""
    table = Table("id", "title", "status", "priority", "owner", "assignee", "due", "job")
    for task in tasks:
        table.add_row(
            task.id,
            task.title,
            task_status(task.status),
            task_priority(task.priority),
            task.owner,
            task.assignee,
            when(task, "due_time"),
            task.job_id,
        )
    return table


def task_label(task: tasks_pb2.Task) -> str:
    """A one-line description of a task for trees."""
    who = f" -> {task.assignee}" if task.assignee else ""
    return f"[bold]{task.title}[/bold] [{task_status(task.status)}]{who}  [dim]{task.id}[/dim]"


def new_tree(task: tasks_pb2.Task) -> Tree:
    return Tree(task_label(task))


def event_line(event: events_pb2.Event) -> str:
    """One event on one line: sequence, time, type, resource and what happened."""
    kind = event.WhichOneof("payload")
    detail = ""
    if kind == "job_event":
        detail = f"{event.job_event.name} [{job_status(event.job_event.status)}]"
    elif kind == "job_status_event":
        change = event.job_status_event
        detail = f"{job_status(change.old_status)} -> {job_status(change.new_status)}"
        detail += f" ({change.reason})" if change.reason else ""
    elif kind == "job_schedule_event":
        detail = f"next run {when(event.job_schedule_event, 'next_run_time')}"
    elif kind == "job_result_event":
        detail = (
            f"attempt {event.job_result_event.attempt} succeeded {event.job_result_event.message}".rstrip()
        )
    elif kind == "job_error_event":
        failure = event.job_error_event
        detail = f"attempt {failure.attempt} failed: {failure.error}" + (
            " (will retry)" if failure.will_retry else ""
        )
    elif kind == "task_event":
        detail = f"{event.task_event.title} [{task_status(event.task_event.status)}]"
    elif kind == "task_status_event":
        moved = event.task_status_event
        detail = f"{task_status(moved.old_status)} -> {task_status(moved.new_status)}"
        detail += f" ({moved.reason})" if moved.reason else ""
    elif kind == "task_assign_event":
        detail = (
            f"{event.task_assign_event.old_assignee or '-'} -> {event.task_assign_event.new_assignee or '-'}"
        )
    elif kind == "task_link_event":
        detail = f"job {event.task_link_event.job_id}"
    return f"#{event.sequence} {when(event, 'occur_time')} {event.type} {event.resource_id} {detail}".rstrip()


# Exit codes: 10 + the gRPC status code, so scripts can tell NOT_FOUND (15) from ABORTED (20).
EXIT_BASE = 10


def describe_failure(error: grpc.RpcError, server: str) -> str:
    """One line: the status code and the server's message (or why it could not be reached)."""
    code = error.code()
    result = operation_result_of(error)
    if result is not None:
        return f"{common_pb2.ErrorCode.Name(result.code).removeprefix('ERROR_CODE_')}: {result.message}"
    if code is grpc.StatusCode.UNAVAILABLE:
        return f"{code.name}: cannot reach jobtask at {server}"
    return f"{code.name}: {error.details() or code.name.lower()}"


def api_failure(error: grpc.RpcError, server: str) -> click.exceptions.Exit:
    """Print the failure on stderr; the exit to raise carries 10 + the gRPC status code."""
    click.echo(f"jobtask: {describe_failure(error, server)}", err=True)
    return click.exceptions.Exit(EXIT_BASE + int(error.code().value[0]))
