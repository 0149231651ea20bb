"""The core and the protos agree: every core enum value has its proto value and back, and
every event type's payload has its place in the Event message."""

from __future__ import annotations

import enum

import pytest
from jobtask.v1 import events_pb2, jobs_pb2, tasks_pb2

from core.messaging import events
from core.services.jobs.types import JobStatus, RunStatus
from core.services.tasks.types import TaskPriority, TaskStatus
from server.conversions.events import PAYLOADS

PAIRS = [
    (JobStatus, jobs_pb2.JobStatus, "JOB_STATUS_"),
    (RunStatus, jobs_pb2.JobRunStatus, "JOB_RUN_STATUS_"),
    (TaskStatus, tasks_pb2.TaskStatus, "TASK_STATUS_"),
    (TaskPriority, tasks_pb2.TaskPriority, "TASK_PRIORITY_"),
]


@pytest.mark.parametrize(("domain", "proto", "prefix"), PAIRS, ids=lambda x: getattr(x, "__name__", ""))
def test_core_and_proto_enums_match_one_to_one(domain: type[enum.Enum], proto: object, prefix: str) -> None:
    values = proto.DESCRIPTOR.values_by_name  # type: ignore[attr-defined]
    names = [name for name in values if not name.endswith("_UNSPECIFIED")]
    assert sorted(prefix + str(member.value) for member in domain) == sorted(names)


def test_every_event_type_has_a_payload_with_a_place_in_the_event_message() -> None:
    oneof = {field.name for field in events_pb2.Event.DESCRIPTOR.oneofs_by_name["payload"].fields}
    for event_type in sorted(events.event_types()):
        payload = events.payload_class(event_type)
        assert payload in PAYLOADS, f"{event_type}: {payload.__name__} has no proto conversion"
        assert PAYLOADS[payload][0] in oneof, f"{event_type}: {PAYLOADS[payload][0]} is not in Event.payload"
    assert {field for field, _ in PAYLOADS.values()} == oneof


# RPC -> the command that calls it, or why there is none.
CLI_COMMANDS: dict[str, tuple[str, ...] | str] = {
    "JobService.CreateJob": ("jobs", "create"),
    "JobService.GetJob": ("jobs", "get"),
    "JobService.UpdateJob": ("jobs", "update"),
    "JobService.DeleteJob": ("jobs", "delete"),
    "JobService.ListJobs": ("jobs", "list"),
    "JobService.ScheduleJob": ("jobs", "schedule"),
    "JobService.StartJob": ("jobs", "start"),
    "JobService.CancelJob": ("jobs", "cancel"),
    "JobService.CompleteJob": ("jobs", "complete"),
    "JobService.FailJob": ("jobs", "fail"),
    "JobService.ListPendingJobs": "`jobs list --status pending` lists them, with paging",
    "JobService.ListRunningJobs": "`jobs list --status running` lists them, with paging",
    "JobService.ListJobRuns": ("jobs", "runs"),
    "JobService.ClaimJobs": ("jobs", "claim"),
    "JobService.HeartbeatJob": ("jobs", "heartbeat"),
    "JobService.PauseJob": ("jobs", "pause"),
    "JobService.ResumeJob": ("jobs", "resume"),
    "JobService.RunJobNow": ("jobs", "run-now"),
    "JobService.GetJobStats": ("jobs", "stats"),
    "JobService.ListJobTasks": ("jobs", "tasks"),
    "JobService.LinkTask": ("jobs", "link"),
    "JobService.UnlinkTask": ("jobs", "unlink"),
    "TaskService.CreateTask": ("tasks", "create"),
    "TaskService.GetTask": ("tasks", "get"),
    "TaskService.UpdateTask": ("tasks", "update"),
    "TaskService.DeleteTask": ("tasks", "delete"),
    "TaskService.ListTasks": ("tasks", "list"),
    "TaskService.AssignTask": ("tasks", "assign"),
    "TaskService.CompleteTask": ("tasks", "complete"),
    "TaskService.CancelTask": ("tasks", "cancel"),
    "TaskService.ReopenTask": ("tasks", "reopen"),
    "TaskService.CreateSubtask": ("tasks", "create"),  # with --parent
    "TaskService.ListSubtasks": ("tasks", "subtasks"),
    "EventService.Subscribe": ("events", "watch"),
}


def test_every_rpc_has_a_command_or_a_reason_not_to() -> None:
    from server.cli.main import cli

    rpcs = {
        f"{service.name}.{method.name}"
        for module in (jobs_pb2, tasks_pb2, events_pb2)
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }
    assert set(CLI_COMMANDS) == rpcs
    for rpc, command in CLI_COMMANDS.items():
        if isinstance(command, str):
            assert command, rpc
            continue
        group, name = command
        assert name in cli.commands[group].commands, f"{rpc}: no `jobtask {group} {name}`"  # type: ignore[attr-defined]
