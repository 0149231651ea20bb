"""``jobtask tasks ...``: the TaskService from the command line."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import click
from google.protobuf import field_mask_pb2
from jobtask.v1 import tasks_pb2, tasks_pb2_grpc
from rich.tree import Tree

from server.cli import Client, json_option, parse_labels, pass_client
from server.cli import output as out

STATUSES = [name.removeprefix("TASK_STATUS_") for name in tasks_pb2.TaskStatus.keys()[1:]]
PRIORITIES = [name.removeprefix("TASK_PRIORITY_") for name in tasks_pb2.TaskPriority.keys()[1:]]


def stub(client: Client) -> tasks_pb2_grpc.TaskServiceStub:
    return tasks_pb2_grpc.TaskServiceStub(client.channel)  # type: ignore[no-untyped-call]


def show(client: Client, task: tasks_pb2.Task) -> None:
    out.emit(task, json_output=client.json_output, human=out.task_view(task))


@click.group()
def tasks() -> None:
    """Create, assign and close tasks and subtasks."""


@tasks.command()
@click.option("--title", required=True)
@click.option("--description", default="")
@click.option("--priority", "level", type=click.Choice(PRIORITIES, case_sensitive=False), default="MEDIUM")
@click.option("--assignee")
@click.option("--job", "job_id", help="the job the task belongs to")
@click.option("--parent", "parent_id", help="create a subtask of this task")
@click.option("--due", type=click.DateTime(), help="due time (local unless zoned)")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE, repeatable")
@click.option("--request-id", help="idempotency key: a retry returns the first task")
@json_option
@pass_client
def create(
    client: Client,
    title: str,
    description: str,
    level: str,
    assignee: str | None,
    job_id: str | None,
    parent_id: str | None,
    due: datetime | None,
    labels: tuple[str, ...],
    request_id: str | None,
) -> None:
    """Create a task, or with --parent a subtask."""
    task = tasks_pb2.Task(
        title=title,
        description=description,
        priority="TASK_PRIORITY_" + level.upper(),
        assignee=assignee or "",
        job_id=job_id or "",
        labels=parse_labels(labels),
    )
    if due is not None:
        task.due_time.FromDatetime(due if due.tzinfo else due.astimezone())
    if parent_id:
        request = tasks_pb2.CreateSubtaskRequest(parent_id=parent_id, task=task, request_id=request_id or "")
        show(client, client.call(stub(client).CreateSubtask, request).task)
    else:
        created = client.call(
            stub(client).CreateTask, tasks_pb2.CreateTaskRequest(task=task, request_id=request_id or "")
        )
        show(client, created.task)


@tasks.command()
@click.argument("task_id")
@json_option
@pass_client
def get(client: Client, task_id: str) -> None:
    """Show a task."""
    show(client, client.call(stub(client).GetTask, tasks_pb2.GetTaskRequest(id=task_id)).task)


@tasks.command("list")
@click.option("--status", "statuses", multiple=True, type=click.Choice(STATUSES, case_sensitive=False))
@click.option("--priority", "priorities", multiple=True, type=click.Choice(PRIORITIES, case_sensitive=False))
@click.option("--assignee")
@click.option("--owner")
@click.option("--job", "job_id")
@click.option("--parent", "parent_id")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE, repeatable")
@click.option("--page-size", type=int, default=50, show_default=True)
@click.option("--page-token", default="")
@json_option
@pass_client
def list_tasks(
    client: Client,
    statuses: tuple[str, ...],
    priorities: tuple[str, ...],
    assignee: str | None,
    owner: str | None,
    job_id: str | None,
    parent_id: str | None,
    labels: tuple[str, ...],
    page_size: int,
    page_token: str,
) -> None:
    """List tasks, a page at a time."""
    request = tasks_pb2.ListTasksRequest(
        statuses=["TASK_STATUS_" + s.upper() for s in statuses],
        priorities=["TASK_PRIORITY_" + p.upper() for p in priorities],
        assignee=assignee or "",
        owner=owner or "",
        job_id=job_id or "",
        parent_id=parent_id or "",
        labels=parse_labels(labels),
        page_size=page_size,
        page_token=page_token,
    )
    response = client.call(stub(client).ListTasks, request)
    out.emit(response, json_output=client.json_output, human=out.tasks_table(response.tasks))
    if response.next_page_token and not client.json_output:
        out.console.print(f"next page: --page-token {response.next_page_token}")


@tasks.command()
@click.argument("task_id")
@click.argument("assignee", required=False)
@click.option("--etag", default="")
@json_option
@pass_client
def assign(client: Client, task_id: str, assignee: str | None, etag: str) -> None:
    """Give a task to ASSIGNEE (none: unassign)."""
    request = tasks_pb2.AssignTaskRequest(id=task_id, assignee=assignee or "", etag=etag)
    show(client, client.call(stub(client).AssignTask, request).task)


@tasks.command()
@click.argument("task_id")
@click.option("--etag", default="")
@json_option
@pass_client
def complete(client: Client, task_id: str, etag: str) -> None:
    """Complete a task whose subtasks are all done."""
    show(
        client,
        client.call(stub(client).CompleteTask, tasks_pb2.CompleteTaskRequest(id=task_id, etag=etag)).task,
    )


@tasks.command()
@click.argument("task_id")
@click.option("--reason", default="")
@click.option("--etag", default="")
@json_option
@pass_client
def cancel(client: Client, task_id: str, reason: str, etag: str) -> None:
    """Cancel a task and its open subtasks."""
    request = tasks_pb2.CancelTaskRequest(id=task_id, reason=reason, etag=etag)
    show(client, client.call(stub(client).CancelTask, request).task)


@tasks.command()
@click.argument("task_id")
@click.option("--etag", default="")
@json_option
@pass_client
def reopen(client: Client, task_id: str, etag: str) -> None:
    """Reopen a completed or cancelled task."""
    show(
        client, client.call(stub(client).ReopenTask, tasks_pb2.ReopenTaskRequest(id=task_id, etag=etag)).task
    )


@tasks.command()
@click.argument("task_id")
@click.option("--etag", default="")
@pass_client
def delete(client: Client, task_id: str, etag: str) -> None:
    """Delete a task and everything below it."""
    client.call(stub(client).DeleteTask, tasks_pb2.DeleteTaskRequest(id=task_id, etag=etag))
    click.echo(f"deleted task {task_id} and its subtasks")


@tasks.command()
@click.argument("task_id")
@json_option
@pass_client
def subtasks(client: Client, task_id: str) -> None:
    """The direct subtasks of a task."""
    response = client.call(
        stub(client).ListSubtasks, tasks_pb2.ListSubtasksRequest(parent_id=task_id, page_size=1000)
    )
    out.emit(response, json_output=client.json_output, human=out.tasks_table(response.tasks))


@tasks.command()
@click.argument("task_id")
@pass_client
def tree(client: Client, task_id: str) -> None:
    """A task and everything below it, as a tree."""
    root = client.call(stub(client).GetTask, tasks_pb2.GetTaskRequest(id=task_id)).task
    view = out.new_tree(root)

    def grow(branch: Tree, parent_id: str) -> None:
        token = ""
        while True:
            page = client.call(
                stub(client).ListSubtasks,
                tasks_pb2.ListSubtasksRequest(parent_id=parent_id, page_size=1000, page_token=token),
            )
            for child in page.tasks:
                grow(branch.add(out.task_label(child)), child.id)
            token = page.next_page_token
            if not token:
                return

    grow(view, root.id)
    out.console.print(view)


@tasks.command()
@click.argument("task_id")
@click.option("--title")
@click.option("--description")
@click.option(
    "--status", type=click.Choice(["OPEN", "IN_PROGRESS"], case_sensitive=False), help="OPEN <-> IN_PROGRESS"
)
@click.option("--priority", "level", type=click.Choice(PRIORITIES, case_sensitive=False))
@click.option("--due", type=click.DateTime(), help="due time (local unless zoned)")
@click.option("--label", "labels", multiple=True, help="KEY=VALUE; replaces all labels")
@click.option("--etag", default="", help="fail with ABORTED unless the task is still at this etag")
@json_option
@pass_client
def update(
    client: Client,
    task_id: str,
    title: str | None,
    description: str | None,
    status: str | None,
    level: str | None,
    due: datetime | None,
    labels: tuple[str, ...],
    etag: str,
) -> None:
    """Change the given fields of a task."""
    given: dict[str, Any] = {"title": title, "description": description}
    if status is not None:
        given["status"] = tasks_pb2.TaskStatus.Value("TASK_STATUS_" + status.upper())
    if level is not None:
        given["priority"] = tasks_pb2.TaskPriority.Value("TASK_PRIORITY_" + level.upper())
    fields = {name: value for name, value in given.items() if value is not None}
    task, paths = tasks_pb2.Task(id=task_id, **fields), list(fields)
    if due is not None:
        task.due_time.FromDatetime(due if due.tzinfo else due.astimezone())
        paths.append("due_time")
    if labels:
        task.labels.update(parse_labels(labels))
        paths.append("labels")
    if not paths:
        raise click.UsageError("nothing to update: give at least one field option")
    request = tasks_pb2.UpdateTaskRequest(
        task=task, update_mask=field_mask_pb2.FieldMask(paths=paths), etag=etag
    )
    show(client, client.call(stub(client).UpdateTask, request).task)
