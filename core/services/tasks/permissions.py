"""Who may do what to a task: the role table (docs/architecture.md), as data."""

from __future__ import annotations

from typing import Final

from core.common import access
from core.common.access import Reach
from core.common.actor import Actor, Role
from core.services.tasks.types import Task

A, OP, M, V, W, S = Role.ADMIN, Role.OPERATOR, Role.MEMBER, Role.VIEWER, Role.WORKER, Role.SYSTEM
ANY, OWN, MINE, NONE = Reach.ANY, Reach.OWN, Reach.OWN | Reach.ASSIGNED, Reach.NONE
# MINE, and every task below one the actor owns (a subtask an assignee added to its task).
MINE_AND_BELOW = MINE | Reach.BELOW_OWN

READ, CREATE, UPDATE, DELETE = "read", "create", "update", "delete"
ASSIGN, COMPLETE, CANCEL, REOPEN = "assign", "complete", "cancel", "reopen"

# action -> role -> which tasks. MINE = owned by or assigned to the actor. Operators read
# all and assign any task; members act on what they own, and read, progress, complete and
# reopen what is assigned to them, and read every task below one they own (an owner sees
# each subtask of its task, whoever added it); viewers only read; workers (who run jobs)
# see no task.
RULES: Final[access.Rules] = {
    #          admin     operator   member     viewer     worker     system
    READ:     {A: ANY,   OP:ANY,    M: MINE_AND_BELOW, V: ANY, W: NONE, S: ANY},
    CREATE:   {A: ANY,   OP:ANY,    M: ANY,    V: NONE,   W: NONE,   S: ANY},
    UPDATE:   {A: ANY,   OP:MINE,   M: MINE,   V: NONE,   W: NONE,   S: ANY},
    DELETE:   {A: ANY,   OP:OWN,    M: OWN,    V: NONE,   W: NONE,   S: ANY},
    ASSIGN:   {A: ANY,   OP:ANY,    M: OWN,    V: NONE,   W: NONE,   S: ANY},
    COMPLETE: {A: ANY,   OP:MINE,   M: MINE,   V: NONE,   W: NONE,   S: ANY},
    CANCEL:   {A: ANY,   OP:OWN,    M: OWN,    V: NONE,   W: NONE,   S: ANY},
    REOPEN:   {A: ANY,   OP:MINE,   M: MINE,   V: NONE,   W: NONE,   S: ANY},
}  # fmt: skip


def can(actor: Actor, action: str, task: Task) -> bool:
    """True when ``actor`` may do ``action`` to ``task``."""
    return access.allows(
        RULES,
        actor,
        action,
        tenant=task.tenant,
        owner=task.owner,
        assignee=task.assignee,
        owners_above=task.owners_above,
    )


def can_read(actor: Actor, task: Task) -> bool:
    """True when ``actor`` may see ``task`` (otherwise it is NOT_FOUND to them)."""
    return can(actor, READ, task)


def may_ever(actor: Actor, action: str) -> bool:
    """True when some task could allow ``action``: the call guard's early check."""
    return access.permits_any(RULES, actor, action)


def reads_only_own(actor: Actor) -> bool:
    """True when the actor's listings must be narrowed to tasks it owns or is assigned."""
    granted = access.reach(RULES, actor, READ)
    return granted != NONE and ANY not in granted
