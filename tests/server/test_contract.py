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
