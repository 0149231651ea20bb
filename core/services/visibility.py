"""Which events an actor may see: those about resources it may read (the rules of Get)."""

from __future__ import annotations

from core.common import access
from core.common.actor import Actor
from core.messaging.events import Event
from core.services.jobs import permissions as job_permissions
from core.services.tasks import permissions as task_permissions
from core.services.tasks.types import TaskAssignEvent


def can_see(actor: Actor, event: Event) -> bool:
    """True when ``actor`` may read the job or task ``event`` is about, as it stood then."""
    payload = event.payload
    owner = str(getattr(payload, "owner", ""))
    if event.type.startswith("job."):
        return access.allows(
            job_permissions.RULES, actor, job_permissions.READ, tenant=event.tenant, owner=owner
        )
    if event.type.startswith("task."):
        assignee = (
            payload.new_assignee
            if isinstance(payload, TaskAssignEvent)
            else getattr(payload, "assignee", None)
        )
        return access.allows(
            task_permissions.RULES,
            actor,
            task_permissions.READ,
            tenant=event.tenant,
            owner=owner,
            assignee=assignee,
            owners_above=getattr(payload, "owners_above", ()),
        )
    return False
