"""The machinery behind each service's permission table: roles grant a reach per action."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping

from core.common.actor import Actor, Role


class Reach(enum.Flag):
    """Which resources a role may act on: none, those it owns, those assigned to it, those
    below one it owns (subtasks of its task, whoever made them), any."""

    NONE = 0
    OWN = enum.auto()
    ASSIGNED = enum.auto()
    BELOW_OWN = enum.auto()
    ANY = enum.auto()


Rules = Mapping[str, Mapping[Role, Reach]]


def reach(rules: Rules, actor: Actor, action: str) -> Reach:
    """The union of what the actor's roles grant for ``action``."""
    granted = Reach.NONE
    by_role = rules[action]
    for role_name in actor.roles:
        try:
            role = Role(role_name)
        except ValueError:
            continue  # an unknown role grants nothing
        granted |= by_role.get(role, Reach.NONE)
    return granted


def permits_any(rules: Rules, actor: Actor, action: str) -> bool:
    """True when some resource could allow ``action`` to the actor (the early check)."""
    return reach(rules, actor, action) != Reach.NONE


def allows(
    rules: Rules,
    actor: Actor,
    action: str,
    *,
    tenant: str,
    owner: str,
    assignee: str | None = None,
    owners_above: Collection[str] = (),
) -> bool:
    """True when the actor may do ``action`` to a resource of ``tenant`` owned by ``owner``
    (below resources owned by ``owners_above``)."""
    if tenant != actor.tenant:
        return False
    granted = reach(rules, actor, action)
    if Reach.ANY in granted:
        return True
    if Reach.OWN in granted and owner == actor.id:
        return True
    if Reach.BELOW_OWN in granted and actor.id in owners_above:
        return True
    return Reach.ASSIGNED in granted and assignee is not None and assignee == actor.id
