"""How the pages say things: statuses, times, durations, schedules, refusals."""

from __future__ import annotations

import zoneinfo
from datetime import UTC, datetime, timedelta
from typing import Any

from cron_descriptor import Options, get_description
from jobtask.v1 import events_pb2, jobs_pb2, tasks_pb2


def enum_word(enum: Any, value: int, prefix: str) -> str:
    """``JOB_STATUS_RUNNING`` -> ``RUNNING``."""
    try:
        return str(enum.Name(value)).removeprefix(prefix)
    except ValueError:
        return str(value)


def job_status(value: int) -> str:
    return enum_word(jobs_pb2.JobStatus, value, "JOB_STATUS_")


def run_status(value: int) -> str:
    return enum_word(jobs_pb2.JobRunStatus, value, "JOB_RUN_STATUS_")


def task_status(value: int) -> str:
    return enum_word(tasks_pb2.TaskStatus, value, "TASK_STATUS_")


def task_priority(value: int) -> str:
    return enum_word(tasks_pb2.TaskPriority, value, "TASK_PRIORITY_")


def moment(message: Any, field: str) -> datetime | None:
    """The time in a Timestamp field, when set."""
    if not message.HasField(field):
        return None
    value: datetime = getattr(message, field).ToDatetime(tzinfo=UTC)
    return value


def when(value: datetime | None, zone: str = "") -> str:
    """``2030-01-01 12:00:05 UTC`` (or in ``zone``); a dash for no time."""
    if value is None:
        return "—"
    if zone:
        try:
            local = value.astimezone(zoneinfo.ZoneInfo(zone))
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            local = value
        return local.strftime("%Y-%m-%d %H:%M:%S %Z")
    return value.strftime("%Y-%m-%d %H:%M:%S UTC")


def duration(value: timedelta | None) -> str:
    """``40 ms``, ``2.50 s``, ``3 min 4 s``, ``1 h 2 min``."""
    if value is None:
        return "—"
    seconds = value.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.2f} s".replace(".00 s", " s")
    if seconds < 60:
        return f"{seconds:.0f} s"
    minutes, seconds = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s" if seconds else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    return f"{hours // 24} days {hours % 24} h"


def schedule(job: jobs_pb2.Job) -> str:
    """The job's schedule in words, with its zone."""
    if not job.HasField("schedule"):
        return "no schedule: runs when started"
    spec = job.schedule.WhichOneof("spec")
    if spec == "run_at":
        return f"once, at {when(moment(job.schedule, 'run_at'))}"
    if spec == "interval":
        return "every " + duration(job.schedule.interval.ToTimedelta())
    cron = job.schedule.cron
    zone = cron.time_zone or "UTC"
    options = Options()
    options.use_24hour_time_format = True
    try:
        words = get_description(cron.expression, options)
    except Exception:  # the library's own error types vary by version; the expression is shown
        words = "by cron"
    return f"{words} ({zone}; cron “{cron.expression}”)"


def next_run(job: jobs_pb2.Job) -> str:
    """When the job runs next, in its zone and in UTC."""
    at = moment(job, "next_run_at")
    if at is None:
        return "—"
    zone = job.schedule.cron.time_zone if job.schedule.WhichOneof("spec") == "cron" else ""
    if zone and zone != "UTC":
        return f"{when(at, zone)} ({when(at)})"
    return when(at)


def labels(value: Any) -> str:
    """``k=v`` pairs, sorted."""
    return ", ".join(f"{k}={v}" for k, v in sorted(value.items()))


def event_summary(event: events_pb2.Event) -> str:
    """What an event says, beyond its type: the transition, the assignee, the error."""
    kind = event.WhichOneof("payload")
    if kind == "job_event":
        return f"{event.job_event.name} [{job_status(event.job_event.status)}]"
    if kind == "job_status_event":
        moved = event.job_status_event
        return _transition(job_status(moved.old_status), job_status(moved.new_status), moved.reason)
    if kind == "job_result_event":
        return event.job_result_event.message
    if kind == "job_error_event":
        error = event.job_error_event
        return error.error + (" (will retry)" if error.will_retry else "")
    if kind == "job_schedule_event":
        return "next run " + when(moment(event.job_schedule_event, "next_run_time"))
    if kind == "job_progress_event":
        progress = event.job_progress_event
        return f"{progress.progress:g}% {progress.message}".strip()
    if kind == "task_event":
        return f"{event.task_event.title} [{task_status(event.task_event.status)}]"
    if kind == "task_status_event":
        changed = event.task_status_event
        return _transition(task_status(changed.old_status), task_status(changed.new_status), changed.reason)
    if kind == "task_assign_event":
        assigned = event.task_assign_event
        return f"{assigned.old_assignee or '—'} → {assigned.new_assignee or '—'}"
    if kind == "task_link_event":
        return f"job {event.task_link_event.job_id or '—'}"
    return ""


def _transition(old: str, new: str, reason: str) -> str:
    """``PENDING → RUNNING (claimed by w)``."""
    return f"{old} → {new}" + (f" ({reason})" if reason else "")
