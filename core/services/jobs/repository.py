"""What JobService needs from storage (implemented in modules/job_store and modules/memory)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from core.services.jobs.types import Job, JobFilters, JobRun, JobStatus


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
