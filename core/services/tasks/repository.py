"""What TaskService needs from storage (implemented in modules/task_store and modules/memory)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Protocol

from core.services.tasks.types import Task, TaskFilters


class TaskRepository(Protocol):
    """Persistence of tasks; tenant is part of every lookup."""

    def get(self, tenant: str, task_id: uuid.UUID) -> Task | None:
        """The task, or None when absent in ``tenant``."""
        ...

    def get_by_request_id(self, tenant: str, owner: str, request_id: str) -> Task | None:
        """The task an earlier create with ``request_id`` made, if any."""
        ...

    def add(self, task: Task) -> None:
        """Insert a new task; ConflictError('uq_tasks_request') on a reused request id,
        at once or at the latest when the unit of work commits (an insert may be held back)."""
        ...

    def save(self, task: Task, *, expected_version: int) -> None:
        """Replace the stored task; StaleVersionError unless it is at ``expected_version``."""
        ...

    def delete(self, task: Task) -> None:
        """Remove the task; StaleVersionError unless it is at ``task.version``."""
        ...

    def list(
        self,
        tenant: str,
        filters: TaskFilters,
        *,
        reader: str | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> Sequence[Task]:
        """Tasks matching ``filters`` in id order after ``after``; with ``reader``, only
        those it owns or is assigned."""
        ...

    def by_job(self, tenant: str, job_id: uuid.UUID) -> Sequence[Task]:
        """Every task of ``job_id``, in id order."""
        ...

    def count_by_job(self, tenant: str, job_id: uuid.UUID) -> tuple[int, int]:
        """(all tasks, COMPLETED tasks) of ``job_id``."""
        ...

    def descendants(self, tenant: str, task_id: uuid.UUID) -> Sequence[Task]:
        """Every task below ``task_id``, parents before their children."""
        ...
