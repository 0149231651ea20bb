"""TaskServicer: the TaskService RPCs over core.services.tasks.TaskService."""

from __future__ import annotations

from typing import Any

from jobtask.v1 import tasks_pb2, tasks_pb2_grpc

from core.common.actor import Actor
from core.common.pagination import Page
from core.common.result import OperationResult
from core.services.tasks.service import TaskService
from core.services.tasks.types import Task
from server import auth
from server.conversions import tasks as convert
from server.conversions.common import parse_etag, require_uuid
from server.servicers.base import Servicer


class TaskServicer(Servicer, tasks_pb2_grpc.TaskServiceServicer):
    """Converts TaskService requests to domain calls and the results back."""

    def __init__(self, *, tasks: TaskService, authenticator: auth.Authenticator) -> None:
        super().__init__(authenticator=authenticator)
        self._tasks = tasks

    def CreateTask(self, request: tasks_pb2.CreateTaskRequest, context: Any) -> tasks_pb2.CreateTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.CreateTaskResponse]:
            spec = convert.task_create_from_proto(request.task, request.request_id)
            created = self._tasks.create_task(actor, spec)
            return created.map(lambda t: tasks_pb2.CreateTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.CreateTaskResponse, work, convert.TASK_PATHS)

    def GetTask(self, request: tasks_pb2.GetTaskRequest, context: Any) -> tasks_pb2.GetTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.GetTaskResponse]:
            found = self._tasks.get_task(actor, require_uuid("id", request.id))
            return found.map(lambda t: tasks_pb2.GetTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.GetTaskResponse, work)

    def UpdateTask(self, request: tasks_pb2.UpdateTaskRequest, context: Any) -> tasks_pb2.UpdateTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.UpdateTaskResponse]:
            task_id = require_uuid("task.id", request.task.id)
            update = convert.task_update_from_proto(request.task, list(request.update_mask.paths))
            updated = self._tasks.update_task(
                actor, task_id, update, expected_version=parse_etag(request.etag)
            )
            return updated.map(lambda t: tasks_pb2.UpdateTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.UpdateTaskResponse, work, convert.TASK_PATHS)

    def DeleteTask(self, request: tasks_pb2.DeleteTaskRequest, context: Any) -> tasks_pb2.DeleteTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.DeleteTaskResponse]:
            task_id = require_uuid("id", request.id)
            deleted = self._tasks.delete_task(actor, task_id, expected_version=parse_etag(request.etag))
            return deleted.map(lambda _: tasks_pb2.DeleteTaskResponse())

        return self._answer(context, tasks_pb2.DeleteTaskResponse, work)

    def ListTasks(self, request: tasks_pb2.ListTasksRequest, context: Any) -> tasks_pb2.ListTasksResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.ListTasksResponse]:
            filters = convert.filters_from_proto(request)
            page = self._tasks.list_tasks(
                actor, filters, page_size=request.page_size, page_token=request.page_token
            )
            return page.map(lambda p: tasks_pb2.ListTasksResponse(**_page(p)))

        return self._answer(context, tasks_pb2.ListTasksResponse, work, convert.LIST_PATHS)

    def AssignTask(self, request: tasks_pb2.AssignTaskRequest, context: Any) -> tasks_pb2.AssignTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.AssignTaskResponse]:
            task_id = require_uuid("id", request.id)
            assigned = self._tasks.assign_task(
                actor, task_id, request.assignee or None, expected_version=parse_etag(request.etag)
            )
            return assigned.map(lambda t: tasks_pb2.AssignTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.AssignTaskResponse, work)

    def CompleteTask(
        self, request: tasks_pb2.CompleteTaskRequest, context: Any
    ) -> tasks_pb2.CompleteTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.CompleteTaskResponse]:
            task_id = require_uuid("id", request.id)
            done = self._tasks.complete_task(actor, task_id, expected_version=parse_etag(request.etag))
            return done.map(lambda t: tasks_pb2.CompleteTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.CompleteTaskResponse, work)

    def CancelTask(self, request: tasks_pb2.CancelTaskRequest, context: Any) -> tasks_pb2.CancelTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.CancelTaskResponse]:
            task_id = require_uuid("id", request.id)
            cancelled = self._tasks.cancel_task(
                actor, task_id, request.reason, expected_version=parse_etag(request.etag)
            )
            return cancelled.map(lambda t: tasks_pb2.CancelTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.CancelTaskResponse, work)

    def ReopenTask(self, request: tasks_pb2.ReopenTaskRequest, context: Any) -> tasks_pb2.ReopenTaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.ReopenTaskResponse]:
            task_id = require_uuid("id", request.id)
            reopened = self._tasks.reopen_task(actor, task_id, expected_version=parse_etag(request.etag))
            return reopened.map(lambda t: tasks_pb2.ReopenTaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.ReopenTaskResponse, work)

    def CreateSubtask(
        self, request: tasks_pb2.CreateSubtaskRequest, context: Any
    ) -> tasks_pb2.CreateSubtaskResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.CreateSubtaskResponse]:
            parent_id = require_uuid("parent_id", request.parent_id)
            spec = convert.task_create_from_proto(request.task, request.request_id)
            created = self._tasks.create_subtask(actor, parent_id, spec)
            return created.map(lambda t: tasks_pb2.CreateSubtaskResponse(task=convert.task_to_proto(t)))

        return self._answer(context, tasks_pb2.CreateSubtaskResponse, work, convert.TASK_PATHS)

    def ListSubtasks(
        self, request: tasks_pb2.ListSubtasksRequest, context: Any
    ) -> tasks_pb2.ListSubtasksResponse:
        def work(actor: Actor) -> OperationResult[tasks_pb2.ListSubtasksResponse]:
            parent_id = require_uuid("parent_id", request.parent_id)
            page = self._tasks.list_subtasks(
                actor, parent_id, page_size=request.page_size, page_token=request.page_token
            )
            return page.map(lambda p: tasks_pb2.ListSubtasksResponse(**_page(p)))

        return self._answer(context, tasks_pb2.ListSubtasksResponse, work)


def _page(page: Page[Task]) -> dict[str, Any]:
    return {"tasks": [convert.task_to_proto(t) for t in page.items], "next_page_token": page.next_page_token}
