"""Event envelopes and payloads -> protobuf; SubscribeRequest -> EventFilter."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from jobtask.v1 import events_pb2

from core.messaging.events import Event, Payload
from core.messaging.feed import EventFilter
from core.services.jobs import types as job_types
from core.services.tasks import types as task_types
from server.conversions import jobs as job_convert
from server.conversions import tasks as task_convert
from server.conversions.common import InvalidRequest, etag, parse_uuid, set_time, to_struct


def _id(value: uuid.UUID | None) -> str:
    return str(value) if value is not None else ""


def _job_event(p: job_types.JobEvent) -> events_pb2.JobEvent:
    return events_pb2.JobEvent(
        job_id=str(p.job_id),
        name=p.name,
        kind=p.kind,
        owner=p.owner,
        status=job_convert.status_to_proto(p.status),
        etag=etag(p.version),
        changed_fields=list(p.changed_fields),
        task_total=p.task_total,
        task_done=p.task_done,
    )


def _job_status_event(p: job_types.JobStatusEvent) -> events_pb2.JobStatusEvent:
    return events_pb2.JobStatusEvent(
        job_id=str(p.job_id),
        owner=p.owner,
        old_status=job_convert.status_to_proto(p.old_status),
        new_status=job_convert.status_to_proto(p.new_status),
        etag=etag(p.version),
        run_id=_id(p.run_id),
        attempt=p.attempt,
        reason=p.reason,
    )


def _job_schedule_event(p: job_types.JobScheduleEvent) -> events_pb2.JobScheduleEvent:
    message = events_pb2.JobScheduleEvent(job_id=str(p.job_id), owner=p.owner, etag=etag(p.version))
    set_time(message, "next_run_time", p.next_run_at)
    return message


def _job_result_event(p: job_types.JobResultEvent) -> events_pb2.JobResultEvent:
    message = events_pb2.JobResultEvent(
        job_id=str(p.job_id),
        owner=p.owner,
        run_id=str(p.run_id),
        attempt=p.attempt,
        result=to_struct(p.result),
        message=p.message,
        etag=etag(p.version),
    )
    set_time(message, "next_run_time", p.next_run_at)
    return message


def _job_error_event(p: job_types.JobErrorEvent) -> events_pb2.JobErrorEvent:
    message = events_pb2.JobErrorEvent(
        job_id=str(p.job_id),
        owner=p.owner,
        run_id=str(p.run_id),
        attempt=p.attempt,
        error=p.error,
        will_retry=p.will_retry,
        etag=etag(p.version),
    )
    set_time(message, "next_attempt_time", p.next_attempt_at)
    return message


def _job_progress_event(p: job_types.JobProgressEvent) -> events_pb2.JobProgressEvent:
    message = events_pb2.JobProgressEvent(
        job_id=str(p.job_id), owner=p.owner, run_id=str(p.run_id), message=p.message, etag=etag(p.version)
    )
    if p.progress is not None:
        message.progress = p.progress
    return message


def _task_event(p: task_types.TaskEvent) -> events_pb2.TaskEvent:
    return events_pb2.TaskEvent(
        task_id=str(p.task_id),
        title=p.title,
        owner=p.owner,
        assignee=p.assignee or "",
        status=task_convert.status_to_proto(p.status),
        priority=task_convert.priority_to_proto(p.priority),
        parent_id=_id(p.parent_id),
        job_id=_id(p.job_id),
        etag=etag(p.version),
        changed_fields=list(p.changed_fields),
    )


def _task_status_event(p: task_types.TaskStatusEvent) -> events_pb2.TaskStatusEvent:
    return events_pb2.TaskStatusEvent(
        task_id=str(p.task_id),
        owner=p.owner,
        assignee=p.assignee or "",
        old_status=task_convert.status_to_proto(p.old_status),
        new_status=task_convert.status_to_proto(p.new_status),
        parent_id=_id(p.parent_id),
        job_id=_id(p.job_id),
        etag=etag(p.version),
        reason=p.reason,
    )


def _task_assign_event(p: task_types.TaskAssignEvent) -> events_pb2.TaskAssignEvent:
    return events_pb2.TaskAssignEvent(
        task_id=str(p.task_id),
        owner=p.owner,
        old_assignee=p.old_assignee or "",
        new_assignee=p.new_assignee or "",
        job_id=_id(p.job_id),
        etag=etag(p.version),
    )


def _task_link_event(p: task_types.TaskLinkEvent) -> events_pb2.TaskLinkEvent:
    return events_pb2.TaskLinkEvent(
        task_id=str(p.task_id),
        owner=p.owner,
        assignee=p.assignee or "",
        status=task_convert.status_to_proto(p.status),
        job_id=str(p.job_id),
        etag=etag(p.version),
    )


# payload class -> (the Event oneof field, the conversion)
PAYLOADS: dict[type[Payload], tuple[str, Callable[[Any], Any]]] = {
    job_types.JobEvent: ("job_event", _job_event),
    job_types.JobStatusEvent: ("job_status_event", _job_status_event),
    job_types.JobScheduleEvent: ("job_schedule_event", _job_schedule_event),
    job_types.JobResultEvent: ("job_result_event", _job_result_event),
    job_types.JobErrorEvent: ("job_error_event", _job_error_event),
    job_types.JobProgressEvent: ("job_progress_event", _job_progress_event),
    task_types.TaskEvent: ("task_event", _task_event),
    task_types.TaskStatusEvent: ("task_status_event", _task_status_event),
    task_types.TaskAssignEvent: ("task_assign_event", _task_assign_event),
    task_types.TaskLinkEvent: ("task_link_event", _task_link_event),
}


def event_to_proto(event: Event) -> events_pb2.Event:
    """The proto of an event envelope with its payload."""
    message = events_pb2.Event(
        id=str(event.id),
        sequence=event.sequence,
        type=event.type,
        tenant=event.tenant,
        actor_id=event.actor_id,
        resource_id=str(event.resource_id),
        job_id=_id(event.job_id),
        correlation_id=event.correlation_id or "",
    )
    set_time(message, "occur_time", event.occurred_at)
    field, convert = PAYLOADS[type(event.payload)]
    getattr(message, field).CopyFrom(convert(event.payload))
    return message


def heartbeat_to_proto(sequence: int, at: datetime) -> events_pb2.SubscribeResponse:
    """A heartbeat response."""
    response = events_pb2.SubscribeResponse(heartbeat=events_pb2.Heartbeat(sequence=sequence))
    set_time(response.heartbeat, "time", at)
    return response


def filter_from_proto(request: events_pb2.SubscribeRequest) -> EventFilter:
    """The EventFilter of a SubscribeRequest."""
    resource_ids = [parse_uuid(f"resource_ids[{n}]", text) for n, text in enumerate(request.resource_ids)]
    job_id = parse_uuid("job_id", request.job_id, required=False)
    try:
        return EventFilter.of(
            types=list(request.types), resource_ids=[r for r in resource_ids if r is not None], job_id=job_id
        )
    except ValueError as exc:
        raise InvalidRequest("types", str(exc)) from exc
