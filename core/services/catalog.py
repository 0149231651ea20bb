"""Every event type, declared once: its name, the payload it carries and who may see it.

The declarations are registered with the event codec (core.messaging.events) here, at the
end of this module, and nowhere else; the event store, the services and the server reach
them through this module. Adding an event type is one line below (see docs/architecture.md),
plus its proto message when its payload is new (a test checks the proto mapping).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final

from core.common import access
from core.common.actor import Actor
from core.messaging import events
from core.messaging.events import Event, Payload
from core.services.jobs import permissions as job_permissions
from core.services.jobs.types import (
    JobErrorEvent,
    JobEvent,
    JobEventType,
    JobProgressEvent,
    JobResultEvent,
    JobScheduleEvent,
    JobStatusEvent,
)
from core.services.tasks import permissions as task_permissions
from core.services.tasks.types import (
    TaskAssignEvent,
    TaskEvent,
    TaskEventType,
    TaskLinkEvent,
    TaskStatusEvent,
)

Visibility = Callable[[Actor, Event], bool]


def job_readers(actor: Actor, event: Event) -> bool:
    """Those who may read the job, as it stood then (its owner is in every job payload)."""
    owner = str(getattr(event.payload, "owner", ""))
    return access.allows(job_permissions.RULES, actor, job_permissions.READ, tenant=event.tenant, owner=owner)


def task_readers(actor: Actor, event: Event) -> bool:
    """Those who may read the task, as it stood then: its owner, its assignee (the new one
    of an assignment), the owners above it, and the roles that read any task."""
    payload = event.payload
    assignee = (
        payload.new_assignee if isinstance(payload, TaskAssignEvent) else getattr(payload, "assignee", None)
    )
    return access.allows(
        task_permissions.RULES,
        actor,
        task_permissions.READ,
        tenant=event.tenant,
        owner=str(getattr(payload, "owner", "")),
        assignee=assignee,
        owners_above=getattr(payload, "owners_above", ()),
    )


@dataclasses.dataclass(frozen=True, slots=True)
class EventDeclaration:
    """One event type: its name, its payload class, who may see it."""

    name: str
    payload: type[Payload]
    visible: Visibility


def _declare(payload: type[Payload], visible: Visibility, *names: str) -> list[EventDeclaration]:
    return [EventDeclaration(name, payload, visible) for name in names]


J, T = JobEventType, TaskEventType
CATALOG: Final[tuple[EventDeclaration, ...]] = (
    *_declare(JobEvent, job_readers, J.CREATED, J.UPDATED, J.DELETED),
    *_declare(JobStatusEvent, job_readers, J.STATUS_CHANGED, J.STARTED, J.CANCELLED, J.CANCEL_REQUESTED),
    *_declare(JobScheduleEvent, job_readers, J.SCHEDULED),
    *_declare(JobResultEvent, job_readers, J.SUCCEEDED),
    *_declare(JobErrorEvent, job_readers, J.FAILED, J.LEASE_EXPIRED),
    *_declare(JobProgressEvent, job_readers, J.PROGRESSED),
    *_declare(TaskEvent, task_readers, T.CREATED, T.UPDATED, T.DELETED),
    *_declare(TaskStatusEvent, task_readers, T.STATUS_CHANGED, T.COMPLETED, T.CANCELLED),
    *_declare(TaskAssignEvent, task_readers, T.ASSIGNED),
    *_declare(TaskLinkEvent, task_readers, T.LINKED, T.UNLINKED),
)
_BY_NAME: Final = {declaration.name: declaration for declaration in CATALOG}


def can_see(actor: Actor, event: Event) -> bool:
    """True when ``actor`` may see ``event``: when it may read what the event is about."""
    declaration = _BY_NAME.get(event.type)
    return declaration is not None and declaration.visible(actor, event)


def register() -> None:
    """Teach the event codec every declared type (idempotent)."""
    for declaration in CATALOG:
        events.register(declaration.payload, declaration.name)


register()
