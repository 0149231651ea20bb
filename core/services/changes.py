"""The shape every change of a job or a task takes, shared by both services.

Load the resource in the actor's tenant; refuse what the actor may not see (NOT_FOUND) or
do (PERMISSION_DENIED) and a stale version (ABORTED); let the service decide (a Change:
the resource after it, the rows to write with the versions they were read at, the
events); write with those version checks, record the events, commit. A call that named no
version is tried again on the resource as it now is when a concurrent change won the race.
Creation has its shape too: a retry with the same request id answers with the first
resource, also when two such requests race.
"""

from __future__ import annotations

import dataclasses
import functools
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, Never, ParamSpec, Protocol, TypeVar

from core.common.actor import Actor
from core.common.clock import Clock
from core.common.errors import ConflictError, guarded, guarded_change
from core.common.result import OperationResult
from core.messaging.events import Event
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory


class Resource(Protocol):
    """What the skeleton reads of a job or a task."""

    @property
    def id(self) -> uuid.UUID: ...

    @property
    def version(self) -> int: ...


R = TypeVar("R", bound=Resource)
S = TypeVar("S", bound=Resource)


class Store(Protocol[S]):
    """A repository as the skeleton uses it."""

    def get(self, tenant: str, resource_id: uuid.UUID, /) -> S | None: ...

    def save(self, resource: S, /, *, expected_version: int) -> None: ...

    def get_by_request_id(self, tenant: str, owner: str, request_id: str, /) -> S | None: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Kind(Generic[R]):
    """A kind of resource: its name, its repository in a unit of work, its permissions."""

    name: str
    store: Callable[[UnitOfWork], Store[R]]
    can_read: Callable[[Actor, R], bool]
    can: Callable[[Actor, str, R], bool]


@dataclasses.dataclass(frozen=True, slots=True)
class Change(Generic[R]):
    """What a decision makes of a resource: the resource after it, each row to write with
    the version it was read at, and the events to record."""

    after: R
    writes: Sequence[tuple[R, int]] = ()
    events: Sequence[Event] = ()

    @staticmethod
    def nothing(resource: R) -> Change[R]:
        """No change at all: nothing written, no event."""
        return Change(resource)

    @staticmethod
    def of(before: R, after: R, events: Sequence[Event]) -> Change[R]:
        """``before`` becomes ``after`` (written over the version read), with ``events``."""
        return Change(after, ((after, before.version),), events)


Decide = Callable[[UnitOfWork, R, datetime], OperationResult[Change[R]]]


P = ParamSpec("P")
T = TypeVar("T")


def reading(kind: str) -> Callable[[Callable[P, OperationResult[T]]], Callable[P, OperationResult[T]]]:
    """Mark a read method of a service: its storage failures become failed results (a lost
    database UNAVAILABLE), as a change's do; the one policy for every call."""

    def wrap(method: Callable[P, OperationResult[T]]) -> Callable[P, OperationResult[T]]:
        @functools.wraps(method)
        def read(*args: P.args, **kwargs: P.kwargs) -> OperationResult[T]:
            return guarded(kind, None, lambda: method(*args, **kwargs))

        return read

    return wrap


def refusal(
    kind: Kind[R],
    actor: Actor,
    resource_id: uuid.UUID,
    resource: R | None,
    action: str,
    expected_version: int | None,
) -> OperationResult[Never] | None:
    """NOT_FOUND, PERMISSION_DENIED or ABORTED for ``action`` on ``resource``; None to go on."""
    if resource is None or not kind.can_read(actor, resource):
        return OperationResult.not_found(kind.name, resource_id)
    if not kind.can(actor, action, resource):
        return OperationResult.denied(action, kind.name, resource_id, actor.id)
    if expected_version is not None and expected_version != resource.version:
        return OperationResult.aborted(kind.name, resource_id, expected_version, resource.version)
    return None


def change(
    uow: UnitOfWorkFactory,
    clock: Clock,
    kind: Kind[R],
    actor: Actor,
    resource_id: uuid.UUID,
    action: str,
    expected_version: int | None,
    decide: Decide[R],
    first: Callable[[UnitOfWork], OperationResult[Never] | None] | None = None,
) -> OperationResult[R]:
    """Load, authorize, decide, write with the version checks, record the events, commit.
    ``first``, when given, may refuse before the resource is even looked at (another
    resource the call needs, whose refusal comes first)."""

    def attempt() -> OperationResult[R]:
        with uow() as work:
            if first is not None:
                refused_first = first(work)
                if refused_first is not None:
                    return refused_first
            store = kind.store(work)
            resource = store.get(actor.tenant, resource_id)
            refused = refusal(kind, actor, resource_id, resource, action, expected_version)
            if refused is not None:
                return refused
            assert resource is not None
            decided = decide(work, resource, clock.now())
            if not decided.ok:
                return decided.as_failure()
            made = decided.value
            if not made.writes:
                return OperationResult.success(made.after)
            for written, read_version in made.writes:
                store.save(written, expected_version=read_version)
            work.events.append(*made.events)
            work.commit()
        return OperationResult.success(made.after)

    return guarded_change(kind.name, resource_id, attempt, unconditional=expected_version is None)


def create_once(
    uow: UnitOfWorkFactory,
    kind: Kind[R],
    actor: Actor,
    request_id: str | None,
    insert: Callable[[], OperationResult[R]],
) -> OperationResult[R]:
    """Run ``insert`` (guarded as any call); when a concurrent request with the same
    ``request_id`` won the insert (a unique violation), answer with what it created."""
    try:
        return guarded(kind.name, None, insert)
    except ConflictError as conflict:
        if request_id is None:
            raise
        original = conflict

        def the_first() -> OperationResult[R]:
            with uow(read_only=True) as work:
                existing = kind.store(work).get_by_request_id(actor.tenant, actor.id, request_id)
            if existing is None:
                raise original  # another constraint than the request id's
            return OperationResult.success(existing)

        return guarded(kind.name, None, the_first)
