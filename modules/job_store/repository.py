"""SqlAlchemyJobRepository: jobs and runs as rows, read and written with Core statements."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    Row,
    Table,
    bindparam,
    delete,
    func,
    literal,
    select,
    update,
)

from core.common.errors import StaleVersionError
from core.services.jobs.types import (
    Job,
    JobFilters,
    JobResult,
    JobRun,
    JobStatus,
    RetryPolicy,
    RunStatus,
    Schedule,
    ScheduleKind,
)
from modules.base import keyset_page, labels_match
from modules.job_store.models import JobRow, JobRunRow
from modules.transaction import TransactionalRepository

jobs = cast("Table", JobRow.__table__)
runs = cast("Table", JobRunRow.__table__)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_UNIQUE = {"jobs.tenant, jobs.owner, jobs.request_id": "uq_jobs_request"}

# The hot statements are built once with bound parameters, so each call only binds values
# (SQLAlchemy compiles them once and finds them in its cache by identity).
_GET = select(jobs).where(jobs.c.id == bindparam("match_id"), jobs.c.tenant == bindparam("match_tenant"))
_GET_SQL = "SELECT * FROM jobs WHERE id = %s AND tenant = %s"
_UNCHANGING = ("id", "tenant", "created_at", "owner", "request_id")
_SAVE = (
    update(jobs)
    .where(jobs.c.id == bindparam("match_id"), jobs.c.version == bindparam("match_version"))
    .values({name: bindparam(name) for name in (c.name for c in jobs.columns) if name not in _UNCHANGING})
)
_SAVE_RUN = (
    update(runs)
    .where(runs.c.id == bindparam("match_id"))
    .values({name: bindparam(name) for name in (c.name for c in runs.columns) if name != "id"})
)
_OPEN_RUN = (
    select(runs)
    .where(runs.c.job_id == bindparam("match_job_id"), runs.c.status == RunStatus.RUNNING.value)
    .order_by(runs.c.id.desc())
    .limit(1)
)


class SqlAlchemyJobRepository(TransactionalRepository):
    """Jobs and runs on one connection, inside the unit of work's transaction."""

    unique_by_columns = _UNIQUE

    def get(self, tenant: str, job_id: uuid.UUID) -> Job | None:
        """The job, or None when absent in ``tenant``."""
        if self._tx.dialect == "postgresql":
            # The hottest read: straight to the driver, past SQLAlchemy's execution and
            # result set-up (about half the cost of a GetJob in-process).
            found = self._tx.driver_read(_GET_SQL, (job_id, tenant))
            return None if found is None else job_from_mapping(found)
        row = self._execute(_GET, {"match_id": job_id, "match_tenant": tenant}).first()
        return None if row is None else job_from_row(row)

    def get_by_request_id(self, tenant: str, owner: str, request_id: str) -> Job | None:
        """The job an earlier create with ``request_id`` made, if any."""
        statement = select(jobs).where(
            jobs.c.tenant == tenant, jobs.c.owner == owner, jobs.c.request_id == request_id
        )
        row = self._execute(statement).first()
        return None if row is None else job_from_row(row)

    def add(self, job: Job) -> None:
        """Insert a new job."""
        self._insert(jobs, job_values(job))

    def save(self, job: Job, *, expected_version: int) -> None:
        """Write ``job`` over the row at ``expected_version``."""
        values = job_values(job)
        for name in _UNCHANGING:
            del values[name]
        values.update(match_id=job.id, match_version=expected_version)
        if self._write(_SAVE, values).rowcount != 1:
            raise StaleVersionError("job", job.id, expected_version, self._current_version(job.id))

    def delete(self, job: Job) -> None:
        """Remove the job (its runs go by cascade)."""
        statement = delete(jobs).where(jobs.c.id == job.id, jobs.c.version == job.version)
        if self._write(statement).rowcount != 1:
            raise StaleVersionError("job", job.id, job.version, self._current_version(job.id))

    def _current_version(self, job_id: uuid.UUID) -> int | None:
        version: int | None = self._execute(select(jobs.c.version).where(jobs.c.id == job_id)).scalar()
        return version

    def list(self, tenant: str, filters: JobFilters, *, after: uuid.UUID | None, limit: int) -> Sequence[Job]:
        """Jobs matching ``filters`` in id (creation) order, after the key ``after``."""
        conditions = [jobs.c.tenant == tenant]
        if after is not None:
            conditions.append(jobs.c.id > after)
        if filters.owner is not None:
            conditions.append(jobs.c.owner == filters.owner)
        conditions += labels_match(jobs.c.labels, filters.labels, self._tx.dialect)
        if filters.created_after is not None:
            conditions.append(jobs.c.created_at >= filters.created_after)
        if filters.created_before is not None:
            conditions.append(jobs.c.created_at < filters.created_before)
        choices = [(jobs.c.status, [s.value for s in filters.statuses]), (jobs.c.kind, filters.kinds)]
        statement = keyset_page(jobs, conditions, [c for c in choices if c[1]], limit)
        return [job_from_row(row) for row in self._execute(statement)]

    def list_by_status(
        self, tenant: str, status: JobStatus, *, owner: str | None, kinds: frozenset[str], limit: int
    ) -> Sequence[Job]:
        """Jobs in ``status``, highest priority first, then oldest."""
        statement = select(jobs).where(jobs.c.tenant == tenant, jobs.c.status == status.value)
        if owner is not None:
            statement = statement.where(jobs.c.owner == owner)
        if kinds:
            statement = statement.where(jobs.c.kind.in_(sorted(kinds)))
        statement = statement.order_by(jobs.c.priority.desc(), jobs.c.id).limit(limit)
        return [job_from_row(row) for row in self._execute(statement)]

    def due(self, now: datetime, *, limit: int) -> Sequence[Job]:
        """SCHEDULED jobs of every tenant due at ``now``, the most overdue first."""
        statement = (
            select(jobs)
            .where(
                jobs.c.status == JobStatus.SCHEDULED.value,
                jobs.c.next_run_at <= now,
                jobs.c.paused.is_(False),
            )
            .order_by(jobs.c.next_run_at, jobs.c.id)
            .limit(limit)
        )
        return [job_from_row(row) for row in self._execute(statement)]

    def claimable(
        self,
        tenant: str,
        *,
        kinds: frozenset[str],
        labels: Mapping[str, str],
        owner: str | None,
        limit: int,
    ) -> Sequence[Job]:
        """PENDING jobs to claim, highest priority first, then oldest, locked for this unit of
        work: on PostgreSQL ``FOR UPDATE SKIP LOCKED`` (a job another claim holds is passed
        over, not waited for); SQLite has one writer at a time."""
        statement = select(jobs).where(jobs.c.tenant == tenant, jobs.c.status == JobStatus.PENDING.value)
        if kinds:
            statement = statement.where(jobs.c.kind.in_(sorted(kinds)))
        if owner is not None:
            statement = statement.where(jobs.c.owner == owner)
        for condition in labels_match(jobs.c.labels, labels, self._tx.dialect):
            statement = statement.where(condition)
        statement = statement.order_by(jobs.c.priority.desc(), jobs.c.id).limit(limit)
        if self._tx.dialect == "postgresql":
            statement = statement.with_for_update(skip_locked=True)
        return [job_from_row(row) for row in self._write(statement)]

    def extend_lease(
        self, job_id: uuid.UUID, run_id: uuid.UUID, *, until: datetime, at: datetime
    ) -> JobRun | None:
        """Move the lease of a RUNNING run of ``job_id`` to ``until``; None when it is not one."""
        statement = (
            update(runs)
            .where(runs.c.id == run_id, runs.c.job_id == job_id, runs.c.status == RunStatus.RUNNING.value)
            .values(lease_expires_at=until, heartbeat_at=at)
            .returning(*runs.columns)
        )
        row = self._write(statement).first()
        return None if row is None else run_from_row(row)

    def expired_runs(self, now: datetime, *, limit: int) -> Sequence[JobRun]:
        """RUNNING runs of every tenant whose lease ran out before ``now``, oldest deadline first."""
        statement = (
            select(runs)
            .where(runs.c.status == RunStatus.RUNNING.value, runs.c.lease_expires_at < now)
            .order_by(runs.c.lease_expires_at)
            .limit(limit)
        )
        return [run_from_row(row) for row in self._execute(statement)]

    def close_expired_run(self, run: JobRun, *, at: datetime) -> bool:
        """Write the closed ``run`` only if its row is still RUNNING with a lease that ran out
        before ``at`` (a heartbeat or a finish that came first wins)."""
        values = run_values(run)
        del values["id"]
        statement = (
            update(runs)
            .where(
                runs.c.id == run.id,
                runs.c.status == RunStatus.RUNNING.value,
                runs.c.lease_expires_at < at,
            )
            .values(values)
        )
        return bool(self._write(statement).rowcount == 1)

    def prune_runs(self, *, keep: int, finished_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished runs with ``keep`` newer runs of their job that
        finished before ``finished_before`` (ranked per job over the (job_id, id) index)."""
        newer = func.row_number().over(partition_by=runs.c.job_id, order_by=runs.c.id.desc())
        ranked = (
            select(runs.c.id, runs.c.finished_at, newer.label("rank"))
            .where(runs.c.status != RunStatus.RUNNING.value)
            .subquery()
        )
        doomed = (
            select(ranked.c.id)
            .where(ranked.c.rank > keep, ranked.c.finished_at < finished_before)
            .limit(limit)
        )
        return int(self._write(delete(runs).where(runs.c.id.in_(doomed))).rowcount)

    def add_run(self, run: JobRun) -> None:
        """Insert a run."""
        self._insert(runs, run_values(run))

    def save_run(self, run: JobRun) -> None:
        """Replace a run."""
        values = run_values(run)
        values["match_id"] = values.pop("id")
        self._write(_SAVE_RUN, values)

    def open_run(self, job_id: uuid.UUID) -> JobRun | None:
        """The run of ``job_id`` still RUNNING, if any."""
        row = self._execute(_OPEN_RUN, {"match_job_id": job_id}).first()
        return None if row is None else run_from_row(row)

    def runs(self, job_id: uuid.UUID, *, before: uuid.UUID | None, limit: int) -> Sequence[JobRun]:
        """Runs of ``job_id``, newest first."""
        statement = select(runs).where(runs.c.job_id == job_id)
        if before is not None:
            statement = statement.where(runs.c.id < before)
        statement = statement.order_by(runs.c.id.desc()).limit(limit)
        return [run_from_row(row) for row in self._execute(statement)]

    def count_by_status(self, tenant: str, *, owner: str | None) -> Mapping[JobStatus, int]:
        """How many jobs are in each status (over the tenant's status index)."""
        statement = select(jobs.c.status, func.count()).where(jobs.c.tenant == tenant)
        if owner is not None:
            statement = statement.where(jobs.c.owner == owner)
        statement = statement.group_by(jobs.c.status)
        return {JobStatus(status): int(count) for status, count in self._execute(statement)}

    def count_finished_runs(
        self, tenant: str, *, owner: str | None, since: datetime, width: timedelta
    ) -> Sequence[tuple[int, RunStatus, int]]:
        """Finished runs per interval and outcome, counted in the database (over the index
        on the tenant's finish times)."""
        # Whole microseconds on both backends, so an interval's edge is exact (as in memory).
        width_us = literal(width // timedelta(microseconds=1), BigInteger)  # past int4 at 36 min
        interval: ColumnElement[Any]
        if self._tx.dialect == "postgresql":
            elapsed = func.extract("epoch", runs.c.finished_at - since) * 1_000_000  # numeric: exact
            interval = func.floor(elapsed / width_us)
        else:  # SQLite keeps "YYYY-MM-DD HH:MM:SS.ffffff" in UTC: seconds and micros apart
            since_us = literal((since - _EPOCH) // timedelta(microseconds=1), BigInteger)
            # (strftime rounds a fraction to milliseconds: it reads the whole seconds alone)
            seconds = func.strftime("%s", func.substr(runs.c.finished_at, 1, 19)).cast(Integer)
            micros = func.substr(runs.c.finished_at, 21, 6).cast(Integer)
            finished_us = seconds * 1_000_000 + micros
            interval = (finished_us - since_us) // width_us
        interval = interval.label("interval")
        statement = select(interval, runs.c.status, func.count()).where(
            runs.c.tenant == tenant, runs.c.finished_at >= since, runs.c.status != RunStatus.RUNNING.value
        )
        if owner is not None:
            statement = statement.join(jobs, jobs.c.id == runs.c.job_id).where(jobs.c.owner == owner)
        counted = self._execute(statement.group_by(interval, runs.c.status))
        return [(int(index), RunStatus(status), int(count)) for index, status, count in counted]


# -- row <-> domain ------------------------------------------------------------------------


def job_values(job: Job) -> dict[str, Any]:
    """The column values of ``job``."""
    schedule, retry, result = job.schedule, job.retry_policy, job.result
    return {
        "id": job.id,
        "tenant": job.tenant,
        "name": job.name,
        "description": job.description,
        "kind": job.kind,
        "payload": dict(job.payload),
        "labels": dict(job.labels),
        "priority": job.priority,
        "status": job.status.value,
        "owner": job.owner,
        "schedule_kind": schedule.kind.value if schedule else None,
        "schedule_run_at": schedule.run_at if schedule else None,
        "schedule_cron": schedule.cron if schedule else None,
        "schedule_timezone": schedule.timezone if schedule else None,
        "schedule_interval_s": schedule.interval.total_seconds() if schedule and schedule.interval else None,
        "retry_max_attempts": retry.max_attempts,
        "retry_initial_backoff_s": retry.initial_backoff.total_seconds(),
        "retry_max_backoff_s": retry.max_backoff.total_seconds(),
        "retry_multiplier": retry.multiplier,
        "attempt_count": job.attempt_count,
        "result_data": dict(result.data) if result else None,
        "result_message": result.message if result else None,
        "last_error": job.last_error,
        "next_run_at": job.next_run_at,
        "created_at": job.created_at,
        "updated_at": job.updated_at,
        "started_at": job.started_at,
        "finished_at": job.finished_at,
        "version": job.version,
        "task_total": job.task_total,
        "task_done": job.task_done,
        "request_id": job.request_id,
        "paused": job.paused,
        "cancel_requested": job.cancel_requested,
        "progress": job.progress,
        "progress_message": job.progress_message,
    }


def job_from_row(row: Row[Any]) -> Job:
    """The Job a row of ``jobs`` holds."""
    return job_from_mapping(row._mapping)


def job_from_mapping(m: Mapping[Any, Any]) -> Job:
    """The Job of a row of ``jobs`` read as column name -> value."""
    schedule = None
    if m["schedule_kind"] is not None:
        interval = m["schedule_interval_s"]
        schedule = Schedule(
            kind=ScheduleKind(m["schedule_kind"]),
            run_at=m["schedule_run_at"],
            cron=m["schedule_cron"],
            timezone=m["schedule_timezone"] or "UTC",
            interval=None if interval is None else timedelta(seconds=interval),
        )
    result = None
    if m["result_data"] is not None or m["result_message"] is not None:
        result = JobResult(data=m["result_data"] or {}, message=m["result_message"] or "")
    return Job(
        id=m["id"],
        tenant=m["tenant"],
        name=m["name"],
        description=m["description"],
        kind=m["kind"],
        payload=m["payload"],
        labels=m["labels"],
        priority=m["priority"],
        status=JobStatus(m["status"]),
        owner=m["owner"],
        schedule=schedule,
        retry_policy=RetryPolicy(
            max_attempts=m["retry_max_attempts"],
            initial_backoff=timedelta(seconds=m["retry_initial_backoff_s"]),
            max_backoff=timedelta(seconds=m["retry_max_backoff_s"]),
            multiplier=m["retry_multiplier"],
        ),
        attempt_count=m["attempt_count"],
        result=result,
        last_error=m["last_error"],
        next_run_at=m["next_run_at"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        version=m["version"],
        task_total=m["task_total"],
        task_done=m["task_done"],
        request_id=m["request_id"],
        paused=m["paused"],
        cancel_requested=m["cancel_requested"],
        progress=m["progress"],
        progress_message=m["progress_message"],
    )


def run_values(run: JobRun) -> dict[str, Any]:
    """The column values of ``run``."""
    return {
        "id": run.id,
        "job_id": run.job_id,
        "tenant": run.tenant,
        "attempt": run.attempt,
        "started_by": run.started_by,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "status": run.status.value,
        "result_data": dict(run.result.data) if run.result else None,
        "result_message": run.result.message if run.result else None,
        "error": run.error,
        "worker": run.worker,
        "lease_expires_at": run.lease_expires_at,
        "heartbeat_at": run.heartbeat_at,
        "lease_duration_s": run.lease_duration.total_seconds() if run.lease_duration else None,
    }


def run_from_row(row: Row[Any]) -> JobRun:
    """The JobRun a row of ``job_runs`` holds."""
    m = row._mapping
    lease = m["lease_duration_s"]
    result = None
    if m["result_data"] is not None or m["result_message"] is not None:
        result = JobResult(data=m["result_data"] or {}, message=m["result_message"] or "")
    return JobRun(
        id=m["id"],
        job_id=m["job_id"],
        tenant=m["tenant"],
        attempt=m["attempt"],
        started_by=m["started_by"],
        started_at=m["started_at"],
        finished_at=m["finished_at"],
        status=RunStatus(m["status"]),
        result=result,
        error=m["error"],
        worker=m["worker"],
        lease_expires_at=m["lease_expires_at"],
        heartbeat_at=m["heartbeat_at"],
        lease_duration=None if lease is None else timedelta(seconds=lease),
    )
