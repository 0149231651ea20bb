"""The actor on whose behalf an operation runs."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """Roles an actor holds within its tenant."""

    ADMIN = "admin"
    OPERATOR = "operator"
    MEMBER = "member"
    VIEWER = "viewer"
    # A process that claims and runs jobs (ClaimJobs, HeartbeatJob, CompleteJob, FailJob).
    WORKER = "worker"
    # The service itself, reacting to events (never granted through a token).
    SYSTEM = "system"


@dataclass(frozen=True, slots=True, kw_only=True)
class Actor:
    """Who asks: an id, the tenant it acts in, and its roles there."""

    id: str
    tenant: str
    roles: frozenset[str]
    display_name: str | None = None


SYSTEM_ACTOR_ID = "system:jobtask"


def system_actor(tenant: str) -> Actor:
    """The actor the service uses for its own reactions within ``tenant``."""
    return Actor(
        id=SYSTEM_ACTOR_ID, tenant=tenant, roles=frozenset({Role.SYSTEM.value}), display_name="jobtask"
    )
