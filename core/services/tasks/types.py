"""Task domain types, the task status machine as data, and the task event payloads."""

from __future__ import annotations

import dataclasses
import enum
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Literal

from core.common import updates, validation
from core.common.result import FieldViolation, OperationResult
from core.common.updates import UNSET, Unset
from core.messaging import events


class TaskStatus(enum.StrEnum):
    """Where a task is in its life."""

    OPEN = "OPEN"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"


class TaskPriority(enum.StrEnum):
    """How urgent a task is."""

    LOW = "LOW"
    MEDIUM = "MEDIUM"
    HIGH = "HIGH"
    URGENT = "URGENT"


class TaskCall(enum.StrEnum):
    """The calls that move a task."""

    UPDATE = "update"
    COMPLETE = "complete"
    CANCEL = "cancel"
    REOPEN = "reopen"


OPEN, IP, C, X = TaskStatus.OPEN, TaskStatus.IN_PROGRESS, TaskStatus.COMPLETED, TaskStatus.CANCELLED

# The task status machine: (from, call) -> the states the call may lead to.
TRANSITIONS: Final[Mapping[tuple[TaskStatus, TaskCall], frozenset[TaskStatus]]] = {
    (OPEN, TaskCall.UPDATE): frozenset({OPEN, IP}),
    (IP, TaskCall.UPDATE): frozenset({OPEN, IP}),
    (OPEN, TaskCall.COMPLETE): frozenset({C}),
    (IP, TaskCall.COMPLETE): frozenset({C}),
    (OPEN, TaskCall.CANCEL): frozenset({X}),
    (IP, TaskCall.CANCEL): frozenset({X}),
    (C, TaskCall.REOPEN): frozenset({OPEN}),
    (X, TaskCall.REOPEN): frozenset({OPEN}),
}

OPEN_STATES: Final = frozenset({OPEN, IP})


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class Task:
    """A unit of human or agent work; changes return a new value with the next version."""

    id: uuid.UUID
    tenant: str
    title: str
    description: str = ""
    status: TaskStatus = TaskStatus.OPEN
    priority: TaskPriority = TaskPriority.MEDIUM
    owner: str
    assignee: str | None = None
    parent_id: uuid.UUID | None = None
    job_id: uuid.UUID | None = None
    due_at: datetime | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    cancel_reason: str | None = None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None = None
    version: int = 1
    request_id: str | None = None
    # The owners of the tasks above this one (set at creation; a tree does not move): they
    # may read it whoever created it.
    owners_above: tuple[str, ...] = ()

    @property
    def is_open(self) -> bool:
        """True while the task is OPEN or IN_PROGRESS."""
        return self.status in OPEN_STATES

    def transition(
        self, call: TaskCall, target: TaskStatus, *, at: datetime, **changes: Any
    ) -> OperationResult[Task]:
        """The task after ``call`` moves it to ``target``; refused per TRANSITIONS."""
        if target not in TRANSITIONS.get((self.status, call), frozenset()):
            return OperationResult.illegal_transition("task", self.id, self.status, target)
        return OperationResult.success(self.changed(at=at, status=target, **changes))

    def changed(self, *, at: datetime, **changes: Any) -> Task:
        """A copy with ``changes``, the next version and ``updated_at``."""
        return dataclasses.replace(self, version=self.version + 1, updated_at=at, **changes)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskCreate:
    """What a caller gives to create a task (or, with create_subtask, a subtask)."""

    title: str
    description: str = ""
    priority: TaskPriority = TaskPriority.MEDIUM
    assignee: str | None = None
    job_id: uuid.UUID | None = None
    due_at: datetime | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    request_id: str | None = None


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskUpdate:
    """The fields an update changes; UNSET ones stay. ``status`` moves OPEN <-> IN_PROGRESS."""

    title: str | Literal[Unset.UNSET] = UNSET
    description: str | Literal[Unset.UNSET] = UNSET
    status: TaskStatus | Literal[Unset.UNSET] = UNSET
    priority: TaskPriority | Literal[Unset.UNSET] = UNSET
    due_at: datetime | Literal[Unset.UNSET] | None = UNSET
    labels: Mapping[str, str] | Literal[Unset.UNSET] = UNSET

    def changes(self) -> dict[str, Any]:
        """The fields this update sets, by name."""
        return updates.set_fields(self)


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskFilters:
    """Which tasks a listing returns; empty fields do not filter."""

    statuses: frozenset[TaskStatus] = frozenset()
    assignee: str | None = None
    owner: str | None = None
    priorities: frozenset[TaskPriority] = frozenset()
    job_id: uuid.UUID | None = None
    parent_id: uuid.UUID | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    due_after: datetime | None = None
    due_before: datetime | None = None

    def fingerprint_parts(self) -> tuple[object, ...]:
        """A stable description, so a page token is not reused with another filter."""
        return (
            sorted(self.statuses),
            self.assignee,
            self.owner,
            sorted(self.priorities),
            self.job_id,
            self.parent_id,
            sorted(self.labels.items()),
            self.due_after.isoformat() if self.due_after else None,
            self.due_before.isoformat() if self.due_before else None,
        )


TITLE_MAX, DESCRIPTION_MAX, ACTOR_ID_MAX, REASON_MAX, REQUEST_ID_MAX = 500, 10_000, 200, 1_000, 200


def field_violations(
    *,
    title: str | None = None,
    description: str | None = None,
    priority: object = None,
    assignee: str | None = None,
    due_at: datetime | None = None,
    labels: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> list[FieldViolation]:
    """Every violation among the given task fields (None means not given)."""
    found: list[FieldViolation] = []
    if title is not None:
        found += validation.text("title", title, max_length=TITLE_MAX, required=True)
    if description is not None:
        found += validation.text("description", description, max_length=DESCRIPTION_MAX)
    if priority is not None and priority not in set(TaskPriority):
        found.append(
            FieldViolation("priority", f"must be one of {', '.join(TaskPriority)} (got {priority!r})")
        )
    if assignee is not None:
        found += validation.text("assignee", assignee, max_length=ACTOR_ID_MAX, required=True)
    if due_at is not None and due_at.tzinfo is None:
        found.append(FieldViolation("due_at", "must carry a time zone"))
    if labels is not None:
        found += validation.labels("labels", labels)
    if request_id is not None:
        found += validation.text("request_id", request_id, max_length=REQUEST_ID_MAX, required=True)
    return found


# -- events ---------------------------------------------------------------------------


class TaskEventType(enum.StrEnum):
    """The task event types."""

    CREATED = "task.created"
    UPDATED = "task.updated"
    DELETED = "task.deleted"
    STATUS_CHANGED = "task.status_changed"
    ASSIGNED = "task.assigned"
    COMPLETED = "task.completed"
    CANCELLED = "task.cancelled"
    LINKED = "task.linked"
    UNLINKED = "task.unlinked"


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskEvent(events.Payload):
    """A task was created, updated or deleted; ``changed_fields`` for updates."""

    task_id: uuid.UUID
    title: str
    owner: str
    assignee: str | None
    status: TaskStatus
    priority: TaskPriority
    parent_id: uuid.UUID | None
    job_id: uuid.UUID | None
    version: int
    changed_fields: tuple[str, ...] = ()
    owners_above: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskStatusEvent(events.Payload):
    """A task's status moved (also the payload of task.completed and task.cancelled)."""

    task_id: uuid.UUID
    owner: str
    assignee: str | None
    old_status: TaskStatus
    new_status: TaskStatus
    parent_id: uuid.UUID | None
    job_id: uuid.UUID | None
    version: int
    reason: str = ""
    owners_above: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskAssignEvent(events.Payload):
    """A task changed hands: ``old_assignee`` to ``new_assignee`` (None: unassigned)."""

    task_id: uuid.UUID
    owner: str
    old_assignee: str | None
    new_assignee: str | None
    job_id: uuid.UUID | None
    version: int
    owners_above: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class TaskLinkEvent(events.Payload):
    """A task joined (task.linked) or left (task.unlinked) the job ``job_id``."""

    task_id: uuid.UUID
    owner: str
    assignee: str | None
    status: TaskStatus
    job_id: uuid.UUID
    version: int
    owners_above: tuple[str, ...] = ()


def task_event(task: Task, changed_fields: tuple[str, ...] = ()) -> TaskEvent:
    """The TaskEvent payload describing ``task``."""
    return TaskEvent(
        task_id=task.id,
        title=task.title,
        owner=task.owner,
        assignee=task.assignee,
        status=task.status,
        priority=task.priority,
        parent_id=task.parent_id,
        job_id=task.job_id,
        version=task.version,
        changed_fields=changed_fields,
        owners_above=task.owners_above,
    )


def link_event(task: Task, job_id: uuid.UUID) -> TaskLinkEvent:
    """The TaskLinkEvent payload of ``task`` put in (or taken out of) ``job_id``."""
    return TaskLinkEvent(
        task_id=task.id,
        owner=task.owner,
        assignee=task.assignee,
        status=task.status,
        job_id=job_id,
        version=task.version,
        owners_above=task.owners_above,
    )


def status_event(before: Task, after: Task, reason: str = "") -> TaskStatusEvent:
    """The TaskStatusEvent payload of ``before`` becoming ``after``."""
    return TaskStatusEvent(
        task_id=after.id,
        owner=after.owner,
        assignee=after.assignee,
        old_status=before.status,
        new_status=after.status,
        parent_id=after.parent_id,
        job_id=after.job_id,
        version=after.version,
        reason=reason,
        owners_above=after.owners_above,
    )
