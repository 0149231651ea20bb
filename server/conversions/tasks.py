"""Task protobuf messages <-> task domain types."""

from __future__ import annotations

from typing import Any

from jobtask.v1 import tasks_pb2

from core.common.updates import UNSET
from core.services.tasks.types import Task, TaskCreate, TaskFilters, TaskPriority, TaskStatus, TaskUpdate
from server.conversions.common import (
    InvalidRequest,
    enum_from_proto,
    enum_to_proto,
    etag,
    optional_time,
    parse_uuid,
    request_paths,
    set_time,
)

STATUS_PREFIX = "TASK_STATUS_"
PRIORITY_PREFIX = "TASK_PRIORITY_"


def status_to_proto(status: TaskStatus) -> Any:
    """The proto TaskStatus of a domain status."""
    return enum_to_proto(status, tasks_pb2.TaskStatus, STATUS_PREFIX)


def status_from_proto(field: str, number: int) -> TaskStatus:
    """The domain status of a proto TaskStatus."""
    status: TaskStatus = enum_from_proto(field, number, tasks_pb2.TaskStatus, TaskStatus, STATUS_PREFIX)
    return status


def priority_to_proto(priority: TaskPriority) -> Any:
    """The proto TaskPriority of a domain priority."""
    return enum_to_proto(priority, tasks_pb2.TaskPriority, PRIORITY_PREFIX)


def priority_from_proto(field: str, number: int, *, default: TaskPriority | None = None) -> TaskPriority:
    """The domain priority of a proto TaskPriority; unspecified takes ``default`` when given."""
    if number == tasks_pb2.TASK_PRIORITY_UNSPECIFIED and default is not None:
        return default
    priority: TaskPriority = enum_from_proto(
        field, number, tasks_pb2.TaskPriority, TaskPriority, PRIORITY_PREFIX
    )
    return priority


def task_to_proto(task: Task) -> tasks_pb2.Task:
    """The proto of a task."""
    message = tasks_pb2.Task(
        id=str(task.id),
        tenant=task.tenant,
        title=task.title,
        description=task.description,
        status=status_to_proto(task.status),
        priority=priority_to_proto(task.priority),
        owner=task.owner,
        assignee=task.assignee or "",
        parent_id=str(task.parent_id) if task.parent_id else "",
        job_id=str(task.job_id) if task.job_id else "",
        labels=dict(task.labels),
        cancel_reason=task.cancel_reason or "",
        etag=etag(task.version),
    )
    set_time(message, "due_time", task.due_at)
    set_time(message, "create_time", task.created_at)
    set_time(message, "update_time", task.updated_at)
    set_time(message, "complete_time", task.completed_at)
    return message


def task_create_from_proto(message: tasks_pb2.Task, request_id: str) -> TaskCreate:
    """The TaskCreate a CreateTask or CreateSubtask request asks for."""
    return TaskCreate(
        title=message.title,
        description=message.description,
        priority=priority_from_proto("task.priority", message.priority, default=TaskPriority.MEDIUM),
        assignee=message.assignee or None,
        job_id=parse_uuid("task.job_id", message.job_id, required=False),
        due_at=optional_time(message, "due_time", "task.due_time"),
        labels=dict(message.labels),
        request_id=request_id or None,
    )


UPDATABLE = {
    "title": "title",
    "description": "description",
    "status": "status",
    "priority": "priority",
    "due_time": "due_at",
    "labels": "labels",
}


def task_update_from_proto(message: tasks_pb2.Task, paths: list[str]) -> TaskUpdate:
    """The TaskUpdate of the fields an update mask names."""
    if not paths:
        raise InvalidRequest("update_mask", f"must name at least one of {', '.join(UPDATABLE)}")
    changes: dict[str, Any] = {}
    for path in paths:
        if path not in UPDATABLE:
            raise InvalidRequest(
                "update_mask", f"{path!r} cannot be updated; updatable: {', '.join(UPDATABLE)}"
            )
        if path == "status":
            changes["status"] = status_from_proto("task.status", message.status)
        elif path == "priority":
            changes["priority"] = priority_from_proto("task.priority", message.priority)
        elif path == "due_time":
            changes["due_at"] = optional_time(message, "due_time", "task.due_time")
        elif path == "labels":
            changes["labels"] = dict(message.labels)
        else:
            changes[path] = getattr(message, path)
    return TaskUpdate(**{name: changes.get(name, UNSET) for name in UPDATABLE.values()})


def filters_from_proto(request: tasks_pb2.ListTasksRequest) -> TaskFilters:
    """The TaskFilters of a ListTasks request."""
    return TaskFilters(
        statuses=frozenset(status_from_proto("statuses", s) for s in request.statuses),
        assignee=request.assignee or None,
        owner=request.owner or None,
        priorities=frozenset(priority_from_proto("priorities", p) for p in request.priorities),
        job_id=parse_uuid("job_id", request.job_id, required=False),
        parent_id=parse_uuid("parent_id", request.parent_id, required=False),
        labels=dict(request.labels),
        due_after=optional_time(request, "due_after"),
        due_before=optional_time(request, "due_before"),
    )


TASK_PATHS = request_paths("task.", {"due_at": "due_time"})  # CreateTask, CreateSubtask, UpdateTask
LIST_PATHS = request_paths()  # ListTasks: its filters are the request's own fields
