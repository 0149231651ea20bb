"""The in-memory unit of work: the same contract as the SQLAlchemy one, for fast tests
and for embedding the services without a database."""

from __future__ import annotations

import collections
import dataclasses
import threading
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from core.common.errors import ConflictError, StaleVersionError
from core.messaging.events import Event
from core.services.jobs.types import Job, JobFilters, JobRun, JobStatus, RunStatus
from core.services.tasks.types import Task, TaskFilters, TaskStatus
from core.services.unit_of_work import BaseUnitOfWork, Publisher


@dataclasses.dataclass
class InMemoryState:
    """Everything stored: a unit of work edits a copy and swaps it in on commit."""

    jobs: dict[uuid.UUID, Job] = dataclasses.field(default_factory=dict)
    runs: dict[uuid.UUID, JobRun] = dataclasses.field(default_factory=dict)
    tasks: dict[uuid.UUID, Task] = dataclasses.field(default_factory=dict)
    events: list[Event] = dataclasses.field(default_factory=list)
    last_sequence: int = 0
    positions: dict[str, int] = dataclasses.field(default_factory=dict)
    leases: dict[str, int] = dataclasses.field(default_factory=dict)

    def copy(self) -> InMemoryState:
        """A copy whose containers can change without touching this one."""
        return InMemoryState(
            jobs=dict(self.jobs),
            runs=dict(self.runs),
            tasks=dict(self.tasks),
            events=list(self.events),
            last_sequence=self.last_sequence,
            positions=dict(self.positions),
            leases=dict(self.leases),
        )


class InMemoryStore:
    """The shared state and the lock that makes units of work serializable."""

    def __init__(self) -> None:
        self.state = InMemoryState()
        self.lock = threading.RLock()


def _matches_labels(labels: Mapping[str, str], wanted: Mapping[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in wanted.items())


class InMemoryJobRepository:
    """Jobs and runs in an InMemoryState."""

    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    def get(self, tenant: str, job_id: uuid.UUID) -> Job | None:
        """The job, or None when absent in ``tenant``."""
        job = self._state.jobs.get(job_id)
        return job if job is not None and job.tenant == tenant else None

    def get_by_request_id(self, tenant: str, owner: str, request_id: str) -> Job | None:
        """The job an earlier create with ``request_id`` made, if any."""
        return next(
            (
                j
                for j in self._state.jobs.values()
                if j.tenant == tenant and j.owner == owner and j.request_id == request_id
            ),
            None,
        )

    def add(self, job: Job) -> None:
        """Insert a new job."""
        key = (job.tenant, job.owner, job.request_id)
        if job.request_id is not None and any(
            (j.tenant, j.owner, j.request_id) == key for j in self._state.jobs.values()
        ):
            raise ConflictError("uq_jobs_request")
        if job.id in self._state.jobs:
            raise ConflictError("pk_jobs")
        self._state.jobs[job.id] = job

    def save(self, job: Job, *, expected_version: int) -> None:
        """Replace the job at ``expected_version``."""
        current = self._state.jobs.get(job.id)
        if current is None or current.version != expected_version:
            raise StaleVersionError("job", job.id, expected_version, current.version if current else None)
        self._state.jobs[job.id] = job

    def delete(self, job: Job) -> None:
        """Remove the job and its runs."""
        current = self._state.jobs.get(job.id)
        if current is None or current.version != job.version:
            raise StaleVersionError("job", job.id, job.version, current.version if current else None)
        del self._state.jobs[job.id]
        for run_id in [r.id for r in self._state.runs.values() if r.job_id == job.id]:
            del self._state.runs[run_id]

    def list(self, tenant: str, filters: JobFilters, *, after: uuid.UUID | None, limit: int) -> Sequence[Job]:
        """Jobs matching ``filters`` in id order after ``after``."""
        found = [
            job
            for job in sorted(self._state.jobs.values(), key=lambda j: j.id)
            if job.tenant == tenant
            and (after is None or job.id > after)
            and (not filters.statuses or job.status in filters.statuses)
            and (filters.owner is None or job.owner == filters.owner)
            and (not filters.kinds or job.kind in filters.kinds)
            and _matches_labels(job.labels, filters.labels)
            and (filters.created_after is None or job.created_at >= filters.created_after)
            and (filters.created_before is None or job.created_at < filters.created_before)
        ]
        return found[:limit]

    def list_by_status(
        self, tenant: str, status: JobStatus, *, owner: str | None, kinds: frozenset[str], limit: int
    ) -> Sequence[Job]:
        """Jobs in ``status``, highest priority first, then oldest."""
        found = [
            job
            for job in self._state.jobs.values()
            if job.tenant == tenant
            and job.status is status
            and (owner is None or job.owner == owner)
            and (not kinds or job.kind in kinds)
        ]
        return sorted(found, key=lambda j: (-j.priority, j.id))[:limit]

    def due(self, now: datetime, *, limit: int) -> Sequence[Job]:
        """SCHEDULED jobs due at ``now``, the most overdue first."""
        found = [
            job
            for job in self._state.jobs.values()
            if job.status is JobStatus.SCHEDULED
            and not job.paused
            and job.next_run_at is not None
            and job.next_run_at <= now
        ]
        return sorted(found, key=lambda j: (j.next_run_at, j.id))[:limit]

    def claimable(
        self,
        tenant: str,
        *,
        kinds: frozenset[str],
        labels: Mapping[str, str],
        owner: str | None,
        limit: int,
    ) -> Sequence[Job]:
        """PENDING jobs to claim, highest priority first, then oldest."""
        found = [
            job
            for job in self._state.jobs.values()
            if job.tenant == tenant
            and job.status is JobStatus.PENDING
            and (not kinds or job.kind in kinds)
            and (owner is None or job.owner == owner)
            and _matches_labels(job.labels, labels)
        ]
        return sorted(found, key=lambda j: (-j.priority, j.id))[:limit]

    def extend_lease(
        self, job_id: uuid.UUID, run_id: uuid.UUID, *, until: datetime, at: datetime
    ) -> JobRun | None:
        """Move the lease of a RUNNING run of ``job_id`` to ``until``; None when it is not one."""
        run = self._state.runs.get(run_id)
        if run is None or run.job_id != job_id or run.status is not RunStatus.RUNNING:
            return None
        extended = dataclasses.replace(run, lease_expires_at=until, heartbeat_at=at)
        self._state.runs[run_id] = extended
        return extended

    def expired_runs(self, now: datetime, *, limit: int) -> Sequence[JobRun]:
        """RUNNING runs whose lease ran out before ``now``, oldest deadline first."""
        found = [
            r
            for r in self._state.runs.values()
            if r.status is RunStatus.RUNNING and r.lease_expires_at is not None and r.lease_expires_at < now
        ]
        return sorted(found, key=lambda r: (r.lease_expires_at, r.id))[:limit]

    def close_expired_run(self, run: JobRun, *, at: datetime) -> bool:
        """Write the closed ``run`` only if it is still RUNNING with a lease that ran out."""
        current = self._state.runs.get(run.id)
        if current is None or current.status is not RunStatus.RUNNING:
            return False
        if current.lease_expires_at is None or current.lease_expires_at >= at:
            return False
        self._state.runs[run.id] = run
        return True

    def prune_runs(self, *, keep: int, finished_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished runs with ``keep`` newer ones, finished before the horizon."""
        by_job: dict[uuid.UUID, list[JobRun]] = {}
        for run in self._state.runs.values():
            if run.status is not RunStatus.RUNNING:
                by_job.setdefault(run.job_id, []).append(run)
        doomed = [
            run.id
            for runs in by_job.values()
            for run in sorted(runs, key=lambda r: r.id, reverse=True)[keep:]
            if run.finished_at is not None and run.finished_at < finished_before
        ][:limit]
        for run_id in doomed:
            del self._state.runs[run_id]
        return len(doomed)

    def add_run(self, run: JobRun) -> None:
        """Insert a run."""
        self._state.runs[run.id] = run

    def save_run(self, run: JobRun) -> None:
        """Replace a run."""
        self._state.runs[run.id] = run

    def open_run(self, job_id: uuid.UUID) -> JobRun | None:
        """The run of ``job_id`` still RUNNING, if any."""
        open_runs = [
            r for r in self._state.runs.values() if r.job_id == job_id and r.status is RunStatus.RUNNING
        ]
        return max(open_runs, key=lambda r: r.id, default=None)

    def runs(self, job_id: uuid.UUID, *, before: uuid.UUID | None, limit: int) -> Sequence[JobRun]:
        """Runs of ``job_id``, newest first."""
        found = [
            r for r in self._state.runs.values() if r.job_id == job_id and (before is None or r.id < before)
        ]
        return sorted(found, key=lambda r: r.id, reverse=True)[:limit]

    def count_by_status(self, tenant: str, *, owner: str | None) -> Mapping[JobStatus, int]:
        """How many jobs are in each status."""
        counted = collections.Counter(
            job.status
            for job in self._state.jobs.values()
            if job.tenant == tenant and (owner is None or job.owner == owner)
        )
        return dict(counted)

    def count_finished_runs(
        self, tenant: str, *, owner: str | None, since: datetime, width: timedelta
    ) -> Sequence[tuple[int, RunStatus, int]]:
        """Finished runs per interval and outcome."""
        owners = {job.id: job.owner for job in self._state.jobs.values()}
        counted = collections.Counter(
            ((run.finished_at - since) // width, run.status)
            for run in self._state.runs.values()
            if run.tenant == tenant
            and run.finished_at is not None
            and run.finished_at >= since
            and (owner is None or owners.get(run.job_id) == owner)
        )
        return [(index, status, count) for (index, status), count in counted.items()]


class InMemoryTaskRepository:
    """Tasks in an InMemoryState."""

    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    def get(self, tenant: str, task_id: uuid.UUID) -> Task | None:
        """The task, or None when absent in ``tenant``."""
        task = self._state.tasks.get(task_id)
        return task if task is not None and task.tenant == tenant else None

    def get_by_request_id(self, tenant: str, owner: str, request_id: str) -> Task | None:
        """The task an earlier create with ``request_id`` made, if any."""
        return next(
            (
                t
                for t in self._state.tasks.values()
                if t.tenant == tenant and t.owner == owner and t.request_id == request_id
            ),
            None,
        )

    def add(self, task: Task) -> None:
        """Insert a new task."""
        key = (task.tenant, task.owner, task.request_id)
        if task.request_id is not None and any(
            (t.tenant, t.owner, t.request_id) == key for t in self._state.tasks.values()
        ):
            raise ConflictError("uq_tasks_request")
        if task.id in self._state.tasks:
            raise ConflictError("pk_tasks")
        self._state.tasks[task.id] = task

    def save(self, task: Task, *, expected_version: int) -> None:
        """Replace the task at ``expected_version``."""
        current = self._state.tasks.get(task.id)
        if current is None or current.version != expected_version:
            raise StaleVersionError("task", task.id, expected_version, current.version if current else None)
        self._state.tasks[task.id] = task

    def delete(self, task: Task) -> None:
        """Remove the task at ``task.version``."""
        current = self._state.tasks.get(task.id)
        if current is None or current.version != task.version:
            raise StaleVersionError("task", task.id, task.version, current.version if current else None)
        del self._state.tasks[task.id]

    def list(
        self,
        tenant: str,
        filters: TaskFilters,
        *,
        reader: str | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> Sequence[Task]:
        """Tasks matching ``filters`` in id order after ``after``."""
        f = filters
        found = [
            t
            for t in sorted(self._state.tasks.values(), key=lambda t: t.id)
            if t.tenant == tenant
            and (reader is None or reader in (t.owner, t.assignee) or reader in t.owners_above)
            and (after is None or t.id > after)
            and (not f.statuses or t.status in f.statuses)
            and (f.assignee is None or t.assignee == f.assignee)
            and (f.owner is None or t.owner == f.owner)
            and (not f.priorities or t.priority in f.priorities)
            and (f.job_id is None or t.job_id == f.job_id)
            and (f.parent_id is None or t.parent_id == f.parent_id)
            and _matches_labels(t.labels, f.labels)
            and (f.due_after is None or (t.due_at is not None and t.due_at >= f.due_after))
            and (f.due_before is None or (t.due_at is not None and t.due_at < f.due_before))
        ]
        return found[:limit]

    def by_job(self, tenant: str, job_id: uuid.UUID) -> Sequence[Task]:
        """Every task of ``job_id``, in id order."""
        return sorted(
            (t for t in self._state.tasks.values() if t.tenant == tenant and t.job_id == job_id),
            key=lambda t: t.id,
        )

    def count_by_job(self, tenant: str, job_id: uuid.UUID) -> tuple[int, int]:
        """(all tasks, COMPLETED tasks) of ``job_id``."""
        of_job = self.by_job(tenant, job_id)
        return len(of_job), sum(1 for t in of_job if t.status is TaskStatus.COMPLETED)

    def descendants(self, tenant: str, task_id: uuid.UUID) -> Sequence[Task]:
        """Every task below ``task_id``, parents before children."""
        found: list[Task] = []
        level = {task_id}
        while level:
            children = sorted(
                (t for t in self._state.tasks.values() if t.tenant == tenant and t.parent_id in level),
                key=lambda t: t.id,
            )
            found += children
            level = {t.id for t in children}
        return found


class InMemoryEventStore:
    """The event log in an InMemoryState."""

    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    def store(self, events: Sequence[Event]) -> list[Event]:
        """Append with the next sequences."""
        first = self._state.last_sequence + 1
        stored = [event.with_sequence(first + offset) for offset, event in enumerate(events)]
        self._state.events.extend(stored)
        self._state.last_sequence += len(stored)
        return stored

    def read_after(self, after_sequence: int, limit: int) -> list[Event]:
        """Events above ``after_sequence``, in order."""
        return [e for e in self._state.events if e.sequence > after_sequence][:limit]

    def read_tenant(self, tenant: str, after_sequence: int, through: int, limit: int) -> list[Event]:
        """Events of ``tenant`` in (after_sequence, through], in order."""
        return [
            e for e in self._state.events if after_sequence < e.sequence <= through and e.tenant == tenant
        ][:limit]

    def bounds(self) -> tuple[int, int]:
        """(oldest sequence kept, last sequence assigned)."""
        oldest = self._state.events[0].sequence if self._state.events else 0
        return oldest, self._state.last_sequence

    def prune(self, older_than: datetime) -> int:
        """Drop the prefix of the log up to the last event before ``older_than``."""
        old = [e.sequence for e in self._state.events if e.occurred_at < older_than]
        if not old:
            return 0
        through = max(old)
        kept = [e for e in self._state.events if e.sequence > through]
        pruned = len(self._state.events) - len(kept)
        self._state.events[:] = kept
        return pruned


class InMemoryPositionStore:
    """Durable subscribers' positions in an InMemoryState."""

    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    def get(self, name: str) -> int:
        """The last sequence ``name`` processed."""
        return self._state.positions.get(name, 0)

    def advance(self, name: str, expected: int, position: int) -> None:
        """Compare-and-set the position of ``name``."""
        current = self._state.positions.get(name, 0)
        if current != expected:
            raise StaleVersionError("subscriber position", name, expected, current)
        self._state.positions[name] = position


class InMemoryLeaseStore:
    """Leader leases in memory: name -> current token (one process has no stalled peers)."""

    def __init__(self, state: InMemoryState) -> None:
        self._state = state

    def holds(self, name: str, token: int) -> bool:
        """True when ``token`` is the current token of lease ``name``."""
        return self._state.leases.get(name) == token


class InMemoryUnitOfWork(BaseUnitOfWork):
    """A serializable transaction over an InMemoryStore: edits a copy, swaps it in on commit."""

    def __init__(
        self, store: InMemoryStore, *, publish: Publisher | None = None, read_only: bool = False
    ) -> None:
        super().__init__(publish=publish, read_only=read_only)
        self._store = store
        self._working: InMemoryState | None = None

    def _begin(self) -> None:
        self._store.lock.acquire()
        self._working = self._store.state.copy()
        self.jobs = InMemoryJobRepository(self._working)
        self.tasks = InMemoryTaskRepository(self._working)
        self.log = InMemoryEventStore(self._working)
        self.positions = InMemoryPositionStore(self._working)
        self.leases = InMemoryLeaseStore(self._working)

    def _commit(self) -> None:
        assert self._working is not None
        self._store.state = self._working
        self._working = self._working.copy()

    def _rollback(self) -> None:
        self._working = None

    def _close(self) -> None:
        self._working = None
        self._store.lock.release()


class InMemoryUnitOfWorkFactory:
    """Opens InMemoryUnitOfWorks over one store."""

    def __init__(self, store: InMemoryStore | None = None, *, publish: Publisher | None = None) -> None:
        self.store = store or InMemoryStore()
        self._publish = publish

    def __call__(self, *, read_only: bool = False) -> InMemoryUnitOfWork:
        """A new unit of work."""
        return InMemoryUnitOfWork(self.store, publish=self._publish, read_only=read_only)
