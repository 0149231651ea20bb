"""The task manager: the tree of tasks and subtasks, a task's page, its actions."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from jobtask.v1 import tasks_pb2
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from core.common import access
from core.services.tasks import permissions
from server.console import words
from server.console.api import Refusal
from server.console.app import (
    api_of,
    checked_form,
    identity_of,
    live_page,
    outcome,
    refusal_fragment,
    render,
    signed_in,
)

STATUSES = [name.removeprefix("TASK_STATUS_") for name in tasks_pb2.TaskStatus.keys()[1:]]
PRIORITIES = [name.removeprefix("TASK_PRIORITY_") for name in tasks_pb2.TaskPriority.keys()[1:]]
# How deep a task's page unfolds its subtasks at once; deeper ones open on demand.
TREE_DEPTH = 4
CHILDREN_PAGE = 100
OPEN_STATUSES = frozenset({"OPEN", "IN_PROGRESS"})

# What each action needs: the permission, the statuses it applies to, its form fields.
ACTIONS: dict[str, tuple[str, frozenset[str], tuple[str, ...]]] = {
    "assign": (permissions.ASSIGN, OPEN_STATUSES, ("assignee",)),
    "complete": (permissions.COMPLETE, OPEN_STATUSES, ()),
    "cancel": (permissions.CANCEL, OPEN_STATUSES, ("reason",)),
    "reopen": (permissions.REOPEN, frozenset({"COMPLETED", "CANCELLED"}), ()),
}


@dataclasses.dataclass
class Node:
    """A task and the subtasks shown under it; ``more`` when they were not fetched."""

    task: tasks_pb2.Task
    children: list[Node] = dataclasses.field(default_factory=list)
    more: bool = False
    # At the top of a listing, though a subtask: its parent is not among the tasks shown.
    parent_elsewhere: bool = False


def forest(tasks: Sequence[tasks_pb2.Task]) -> list[Node]:
    """The tasks as trees: each under its parent when the parent is among them, else at
    the top (a subtask whose parent is elsewhere says so)."""
    nodes = {task.id: Node(task) for task in tasks}
    roots: list[Node] = []
    for task in tasks:
        parent = nodes.get(task.parent_id)
        if parent is not None:
            parent.children.append(nodes[task.id])
        else:
            nodes[task.id].parent_elsewhere = bool(task.parent_id)
            roots.append(nodes[task.id])
    return roots


async def subtree(request: Request, task: tasks_pb2.Task, depth: int) -> Node:
    """``task`` with its subtasks fetched down to ``depth`` levels."""
    node = Node(task)
    if depth == 0:
        node.more = True
        return node
    api = api_of(request)
    listed = await api.call(
        identity_of(request),
        api.tasks.ListSubtasks,
        tasks_pb2.ListSubtasksRequest(parent_id=task.id, page_size=CHILDREN_PAGE),
    )
    node.children = list(
        await asyncio.gather(*(subtree(request, child, depth - 1) for child in listed.tasks))
    )
    node.more = bool(listed.next_page_token)
    return node


def _filters(request: Request) -> dict[str, Any]:
    query = request.query_params
    return {
        "status": [s for s in query.getlist("status") if s in STATUSES],
        "assignee": query.get("assignee", "").strip(),
        "page_token": query.get("page_token", ""),
    }


async def _tree(request: Request) -> dict[str, Any]:
    chosen = _filters(request)
    context: dict[str, Any] = {"chosen": chosen, "roots": [], "refusal": None}
    listing = tasks_pb2.ListTasksRequest(
        page_size=100,
        page_token=chosen["page_token"],
        statuses=["TASK_STATUS_" + s for s in chosen["status"]],
        assignee=chosen["assignee"],
    )
    try:
        listed = await api_of(request).call(identity_of(request), api_of(request).tasks.ListTasks, listing)
    except Refusal as refused:
        context["refusal"] = refused
        return context
    context["roots"] = forest(listed.tasks)
    context["next_token"] = listed.next_page_token
    return context


task_list, task_tree = live_page(
    "tasks.html", "_task_tree.html", _tree, statuses=STATUSES, priorities=PRIORITIES
)


@signed_in
async def children(request: Request) -> Response:
    """The subtasks of a task, for a node opened on demand."""
    api = api_of(request)
    try:
        task = (
            await api.call(
                identity_of(request),
                api.tasks.GetTask,
                tasks_pb2.GetTaskRequest(id=request.path_params["task_id"]),
            )
        ).task
        node = await subtree(request, task, 2)
    except Refusal as refused:
        return refusal_fragment(request, refused)
    return render(request, "_task_children.html", node=node)


def _task_of_form(form: FormData) -> tasks_pb2.Task:
    priority = str(form.get("priority", "MEDIUM"))
    return tasks_pb2.Task(
        title=str(form.get("title", "")).strip(),
        description=str(form.get("description", "")),
        assignee=str(form.get("assignee", "")).strip(),
        priority="TASK_PRIORITY_" + (priority if priority in PRIORITIES else "MEDIUM"),
    )


@signed_in
async def create_task(request: Request) -> Response:
    form = await checked_form(request)
    api = api_of(request)
    try:
        created = await api.call(
            identity_of(request), api.tasks.CreateTask, tasks_pb2.CreateTaskRequest(task=_task_of_form(form))
        )
    except Refusal as refused:
        context = await _tree(request)
        return render(
            request,
            "tasks.html",
            status_code=400,
            statuses=STATUSES,
            priorities=PRIORITIES,
            form_refusal=refused,
            **context,
        )
    return RedirectResponse(f"/tasks/{created.task.id}", status_code=303)


async def _task_context(request: Request, task_id: str) -> dict[str, Any]:
    api, identity = api_of(request), identity_of(request)
    task = (await api.call(identity, api.tasks.GetTask, tasks_pb2.GetTaskRequest(id=task_id))).task
    parent = None
    if task.parent_id:
        try:
            parent = (
                await api.call(identity, api.tasks.GetTask, tasks_pb2.GetTaskRequest(id=task.parent_id))
            ).task
        except Refusal:
            parent = None  # a parent the actor may not read stays unnamed
    actor = identity.as_actor()
    status = words.task_status(task.status)
    actions = [
        {
            "name": name,
            "fields": fields,
            "allowed": access.allows(
                permissions.RULES,
                actor,
                permission,
                tenant=task.tenant,
                owner=task.owner,
                assignee=task.assignee or None,
            ),
        }
        for name, (permission, statuses, fields) in ACTIONS.items()
        if status in statuses
    ]
    return {
        "task": task,
        "parent": parent,
        "tree": await subtree(request, task, TREE_DEPTH),
        "actions": actions,
        "priorities": PRIORITIES,
    }


task_page, task_panel = live_page(
    "task.html", "_task_panel.html", lambda request: _task_context(request, request.path_params["task_id"])
)


async def _named(request: Request, ids: Sequence[str]) -> list[tasks_pb2.Task]:
    """The tasks of ``ids`` the actor may read, to name them in a refusal."""
    api = api_of(request)

    async def get(task_id: str) -> tasks_pb2.Task | None:
        try:
            found = await api.call(
                identity_of(request), api.tasks.GetTask, tasks_pb2.GetTaskRequest(id=task_id)
            )
        except Refusal:
            return None
        task: tasks_pb2.Task = found.task
        return task

    found = await asyncio.gather(*(get(i) for i in ids[:20]))
    return [task for task in found if task is not None]


@signed_in
async def act(request: Request) -> Response:
    """Run an action or create a subtask; answer the task's panel, with any refusal."""
    form = await checked_form(request)
    task_id, name = request.path_params["task_id"], request.path_params["action"]
    api = api_of(request)
    etag = str(form.get("etag", ""))
    calls: dict[str, tuple[Any, Any]] = {
        "assign": (
            api.tasks.AssignTask,
            tasks_pb2.AssignTaskRequest(
                id=task_id, assignee=str(form.get("assignee", "")).strip(), etag=etag
            ),
        ),
        "complete": (api.tasks.CompleteTask, tasks_pb2.CompleteTaskRequest(id=task_id, etag=etag)),
        "cancel": (
            api.tasks.CancelTask,
            tasks_pb2.CancelTaskRequest(id=task_id, reason=str(form.get("reason", "")).strip(), etag=etag),
        ),
        "reopen": (api.tasks.ReopenTask, tasks_pb2.ReopenTaskRequest(id=task_id, etag=etag)),
        "subtask": (
            api.tasks.CreateSubtask,
            tasks_pb2.CreateSubtaskRequest(parent_id=task_id, task=_task_of_form(form)),
        ),
    }
    if name not in calls:
        return Response("no such action", status_code=404)
    refusal, done, open_children = None, "", []
    try:
        answer = await api.call(identity_of(request), *calls[name])
        done = (
            f"Subtask “{answer.task.title}” created."
            if name == "subtask"
            else f"{name.capitalize()}: the task is now {words.task_status(answer.task.status)}."
        )
    except Refusal as refused:
        refusal = refused
        open_children = await _named(request, [str(i) for i in refused.details.get("open_subtasks", [])])
    return await outcome(
        request,
        refusal=refusal,
        done=done,
        page="task.html",
        context=lambda r: _task_context(r, task_id),
        extra={"open_children": open_children},
    )


routes = [
    Route("/tasks", task_list, methods=["GET"]),
    Route("/tasks", create_task, methods=["POST"]),
    Route("/tasks/tree", task_tree),
    Route("/tasks/{task_id}", task_page),
    Route("/tasks/{task_id}/panel", task_panel),
    Route("/tasks/{task_id}/children", children),
    Route("/tasks/{task_id}/{action}", act, methods=["POST"]),
]
