"""Who may do what to a job: the role table (docs/architecture.md), as data."""

from __future__ import annotations

from typing import Final

from core.common import access
from core.common.access import Reach
from core.common.actor import Actor, Role
from core.services.jobs.types import Job

A, OP, M, V, W, S = Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.VIEWER, Role.WORKER, Role.SYSTEM
ANY, OWN, NONE = Reach.ANY, Reach.OWN, Reach.NONE

READ, CREATE, UPDATE, DELETE = "read", "create", "update", "delete"
SCHEDULE, START, COMPLETE, FAIL, CANCEL = "schedule", "start", "complete", "fail", "cancel"
CLAIM, HEARTBEAT = "claim", "heartbeat"

# action -> role -> which jobs. Operators run every lifecycle call on any job; members
# create jobs and read, update, delete and cancel their own; viewers only read; workers
# read, claim and run jobs (and nothing else: they cannot create, change or cancel them).
RULES: Final[access.Rules] = {
    #           admin     operator   member     viewer     worker    system
    READ:      {A: ANY,   OP: ANY,   M: OWN,    V: ANY,    W: ANY,   S: ANY},
    CREATE:    {A: ANY,   OP: ANY,   M: ANY,    V: NONE,   W: NONE,  S: ANY},
    UPDATE:    {A: ANY,   OP: OWN,   M: OWN,    V: NONE,   W: NONE,  S: ANY},
    DELETE:    {A: ANY,   OP: OWN,   M: OWN,    V: NONE,   W: NONE,  S: ANY},
    SCHEDULE:  {A: ANY,   OP: ANY,   M: NONE,   V: NONE,   W: NONE,  S: ANY},
    START:     {A: ANY,   OP: ANY,   M: NONE,   V: NONE,   W: ANY,   S: ANY},
    CLAIM:     {A: ANY,   OP: ANY,   M: NONE,   V: NONE,   W: ANY,   S: ANY},
    HEARTBEAT: {A: ANY,   OP: ANY,   M: NONE,   V: NONE,   W: ANY,   S: ANY},
    COMPLETE:  {A: ANY,   OP: ANY,   M: NONE,   V: NONE,   W: ANY,   S: ANY},
    FAIL:      {A: ANY,   OP: ANY,   M: NONE,   V: NONE,   W: ANY,   S: ANY},
    CANCEL:    {A: ANY,   OP: ANY,   M: OWN,    V: NONE,   W: NONE,  S: ANY},
}  # fmt: skip


def can(actor: Actor, action: str, job: Job) -> bool:
    """True when ``actor`` may do ``action`` to ``job``."""
    return access.allows(RULES, actor, action, tenant=job.tenant, owner=job.owner)


def can_read(actor: Actor, job: Job) -> bool:
    """True when ``actor`` may see ``job`` (otherwise it is NOT_FOUND to them)."""
    return can(actor, READ, job)


def may_ever(actor: Actor, action: str) -> bool:
    """True when some job could allow ``action``: the call guard's early check."""
    return access.permits_any(RULES, actor, action)


def claims_only_own(actor: Actor) -> bool:
    """True when the jobs the actor may claim are narrowed to those it owns."""
    return Reach.ANY not in access.reach(RULES, actor, CLAIM)


def reads_only_own(actor: Actor) -> bool:
    """True when the actor's listings must be narrowed to the jobs it owns."""
    return access.reach(RULES, actor, READ) == OWN
