"""What JobService needs from storage (implemented in modules/job_store and modules/memory)."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from core.services.jobs.types import Job, JobFilters, JobRun, JobStatus, RunStatus


class JobRepository(Protocol):
    """Persistence of jobs and their runs; tenant is part of every lookup."""

    def get(self, tenant: str, job_id: uuid.UUID) -> Job | None:
        """The job, or None when absent in ``tenant``."""
        ...

    def get_by_request_id(self, tenant: str, owner: str, request_id: str) -> Job | None:
        """The job an earlier create with ``request_id`` made, if any."""
        ...

    def add(self, job: Job) -> None:
        """Insert a new job; ConflictError('uq_jobs_request') on a reused request id,
        at once or at the latest when the unit of work commits (an insert may be held back)."""
        ...

    def save(self, job: Job, *, expected_version: int) -> None:
        """Replace the stored job; StaleVersionError unless it is at ``expected_version``."""
        ...

    def delete(self, job: Job) -> None:
        """Remove the job and its runs; StaleVersionError unless it is at ``job.version``."""
        ...

    def list(
        self,
        tenant: str,
        filters: JobFilters,
        *,
        after: uuid.UUID | None,
        limit: int,
    ) -> Sequence[Job]:
        """Jobs matching ``filters`` in id order, after the key ``after``."""
        ...

    def list_by_status(
        self, tenant: str, status: JobStatus, *, owner: str | None, kinds: frozenset[str], limit: int
    ) -> Sequence[Job]:
        """Jobs in ``status``, highest priority first, then oldest."""
        ...

    def due(self, now: datetime, *, limit: int) -> Sequence[Job]:
        """SCHEDULED jobs of every tenant whose ``next_run_at`` is not after ``now``."""
        ...

    def claimable(
        self,
        tenant: str,
        *,
        kinds: frozenset[str],
        labels: Mapping[str, str],
        owner: str | None,
        limit: int,
    ) -> Sequence[Job]:
        """PENDING jobs to claim, highest priority first, then oldest; each is locked for this
        unit of work, and one another unit of work holds is skipped (not waited for)."""
        ...

    def extend_lease(
        self, job_id: uuid.UUID, run_id: uuid.UUID, *, until: datetime, at: datetime
    ) -> JobRun | None:
        """Move the lease of run ``run_id`` to ``until`` (a heartbeat at ``at``); None unless
        it is still a RUNNING run of ``job_id``."""
        ...

    def expired_runs(self, now: datetime, *, limit: int) -> Sequence[JobRun]:
        """RUNNING runs of every tenant whose lease ran out before ``now``, oldest deadline first."""
        ...

    def close_expired_run(self, run: JobRun, *, at: datetime) -> bool:
        """Write ``run`` (closed) over its row only if that is still RUNNING with a lease
        that ran out before ``at``; False when a heartbeat or a finish came first."""
        ...

    def prune_runs(self, *, keep: int, finished_before: datetime, limit: int) -> int:
        """Delete up to ``limit`` finished runs that have at least ``keep`` newer runs of their
        job and finished before ``finished_before``; how many went."""
        ...

    def add_run(self, run: JobRun) -> None:
        """Insert a run."""
        ...

    def save_run(self, run: JobRun) -> None:
        """Replace a run."""
        ...

    def open_run(self, job_id: uuid.UUID) -> JobRun | None:
        """The run of ``job_id`` still RUNNING, if any."""
        ...

    def runs(self, job_id: uuid.UUID, *, before: uuid.UUID | None, limit: int) -> Sequence[JobRun]:
        """Runs of ``job_id``, newest first, before the key ``before``."""
        ...

    def count_by_status(self, tenant: str, *, owner: str | None) -> Mapping[JobStatus, int]:
        """How many jobs of ``tenant`` (of ``owner`` only, when given) are in each status;
        a status with none may be absent."""
        ...

    def count_finished_runs(
        self, tenant: str, *, owner: str | None, since: datetime, width: timedelta
    ) -> Sequence[tuple[int, RunStatus, int]]:
        """Runs of ``tenant``'s jobs (of ``owner``'s only, when given) that finished at or
        after ``since``, counted per interval: (intervals of ``width`` since ``since``,
        outcome, count)."""
        ...
