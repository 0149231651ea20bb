"""SqlAlchemyTaskRepository: tasks as rows, read and written with Core statements."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import Row, Table, bindparam, delete, func, select, update

from core.common.errors import StaleVersionError
from core.services.tasks.types import Task, TaskFilters, TaskPriority, TaskStatus
from modules.base import keyset_page, labels_match
from modules.task_store.models import TaskReaderRow, TaskRow
from modules.transaction import TransactionalRepository

tasks = cast("Table", TaskRow.__table__)
readers = cast("Table", TaskReaderRow.__table__)

_UNIQUE = {"tasks.tenant, tasks.owner, tasks.request_id": "uq_tasks_request"}

# Hot statements built once with bound parameters (see modules/job_store/repository.py).
_GET = select(tasks).where(tasks.c.id == bindparam("match_id"), tasks.c.tenant == bindparam("match_tenant"))
_UNCHANGING = ("id", "tenant", "owner", "parent_id", "created_at", "request_id")
_SAVE = (
    update(tasks)
    .where(tasks.c.id == bindparam("match_id"), tasks.c.version == bindparam("match_version"))
    .values({name: bindparam(name) for name in (c.name for c in tasks.columns) if name not in _UNCHANGING})
)


class SqlAlchemyTaskRepository(TransactionalRepository):
    """Tasks on one connection, inside the unit of work's transaction."""

    unique_by_columns = _UNIQUE

    def get(self, tenant: str, task_id: uuid.UUID) -> Task | None:
        """The task, or None when absent in ``tenant``."""
        row = self._execute(_GET, {"match_id": task_id, "match_tenant": tenant}).first()
        return None if row is None else task_from_row(row)

    def get_by_request_id(self, tenant: str, owner: str, request_id: str) -> Task | None:
        """The task an earlier create with ``request_id`` made, if any."""
        statement = select(tasks).where(
            tasks.c.tenant == tenant, tasks.c.owner == owner, tasks.c.request_id == request_id
        )
        row = self._execute(statement).first()
        return None if row is None else task_from_row(row)

    def add(self, task: Task) -> None:
        """Insert a new task (and a reader row per owner above it)."""
        self._insert(tasks, task_values(task))
        for reader in task.owners_above:
            self._insert(readers, {"tenant": task.tenant, "reader": reader, "task_id": task.id})

    def save(self, task: Task, *, expected_version: int) -> None:
        """Write ``task`` over the row at ``expected_version``."""
        values = task_values(task)
        for name in _UNCHANGING:
            del values[name]
        values.update(match_id=task.id, match_version=expected_version)
        if self._write(_SAVE, values).rowcount != 1:
            raise StaleVersionError("task", task.id, expected_version, self._current_version(task.id))

    def delete(self, task: Task) -> None:
        """Remove the task at ``task.version``."""
        statement = delete(tasks).where(tasks.c.id == task.id, tasks.c.version == task.version)
        if self._write(statement).rowcount != 1:
            raise StaleVersionError("task", task.id, task.version, self._current_version(task.id))

    def _current_version(self, task_id: uuid.UUID) -> int | None:
        version: int | None = self._execute(select(tasks.c.version).where(tasks.c.id == task_id)).scalar()
        return version

    def list(
        self,
        tenant: str,
        filters: TaskFilters,
        *,
        reader: str | None,
        after: uuid.UUID | None,
        limit: int,
    ) -> Sequence[Task]:
        """Tasks matching ``filters`` in id order; with ``reader``, those it owns or holds."""
        c = tasks.c
        conditions = [c.tenant == tenant]
        alternatives = []
        if reader is not None:
            below = select(readers.c.task_id).where(readers.c.tenant == tenant, readers.c.reader == reader)
            alternatives = [c.owner == reader, c.assignee == reader, c.id.in_(below)]
        if after is not None:
            conditions.append(c.id > after)
        if filters.assignee is not None:
            conditions.append(c.assignee == filters.assignee)
        if filters.owner is not None:
            conditions.append(c.owner == filters.owner)
        if filters.job_id is not None:
            conditions.append(c.job_id == filters.job_id)
        if filters.parent_id is not None:
            conditions.append(c.parent_id == filters.parent_id)
        conditions += labels_match(c.labels, filters.labels, self._tx.dialect)
        if filters.due_after is not None:
            conditions.append(c.due_at >= filters.due_after)
        if filters.due_before is not None:
            conditions.append(c.due_at < filters.due_before)
        choices = [
            (c.status, [status.value for status in filters.statuses]),
            (c.priority, [priority.value for priority in filters.priorities]),
        ]
        statement = keyset_page(
            tasks, conditions, [choice for choice in choices if choice[1]], limit, alternatives
        )
        return [task_from_row(row) for row in self._execute(statement)]

    def by_job(self, tenant: str, job_id: uuid.UUID) -> Sequence[Task]:
        """Every task of ``job_id``, in id order."""
        statement = (
            select(tasks).where(tasks.c.tenant == tenant, tasks.c.job_id == job_id).order_by(tasks.c.id)
        )
        return [task_from_row(row) for row in self._execute(statement)]

    def count_by_job(self, tenant: str, job_id: uuid.UUID) -> tuple[int, int]:
        """(all tasks, COMPLETED tasks) of ``job_id``, counted in the database."""
        completed = func.count().filter(tasks.c.status == TaskStatus.COMPLETED.value)
        statement = select(func.count(), completed).where(tasks.c.tenant == tenant, tasks.c.job_id == job_id)
        total, done = self._execute(statement).one()
        return int(total), int(done)

    def descendants(self, tenant: str, task_id: uuid.UUID) -> Sequence[Task]:
        """Every task below ``task_id``, level by level (parents before children)."""
        found: list[Task] = []
        level = [task_id]
        while level:
            statement = (
                select(tasks)
                .where(tasks.c.tenant == tenant, tasks.c.parent_id.in_(level))
                .order_by(tasks.c.id)
            )
            children = [task_from_row(row) for row in self._execute(statement)]
            found += children
            level = [child.id for child in children]
        return found


def task_values(task: Task) -> dict[str, Any]:
    """The column values of ``task``."""
    return {
        "id": task.id,
        "tenant": task.tenant,
        "title": task.title,
        "description": task.description,
        "status": task.status.value,
        "priority": task.priority.value,
        "owner": task.owner,
        "assignee": task.assignee,
        "parent_id": task.parent_id,
        "job_id": task.job_id,
        "due_at": task.due_at,
        "labels": dict(task.labels),
        "cancel_reason": task.cancel_reason,
        "created_at": task.created_at,
        "updated_at": task.updated_at,
        "completed_at": task.completed_at,
        "version": task.version,
        "request_id": task.request_id,
        "owners_above": list(task.owners_above),
    }


def task_from_row(row: Row[Any]) -> Task:
    """The Task a row of ``tasks`` holds."""
    m = row._mapping
    return Task(
        id=m["id"],
        tenant=m["tenant"],
        title=m["title"],
        description=m["description"],
        status=TaskStatus(m["status"]),
        priority=TaskPriority(m["priority"]),
        owner=m["owner"],
        assignee=m["assignee"],
        parent_id=m["parent_id"],
        job_id=m["job_id"],
        due_at=m["due_at"],
        labels=m["labels"],
        cancel_reason=m["cancel_reason"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        completed_at=m["completed_at"],
        version=m["version"],
        request_id=m["request_id"],
        owners_above=tuple(m["owners_above"] or ()),
    )
