"""The shape every change of a job or a task takes, shared by both services.

Load the resource in the actor's tenant; refuse what the actor may not see (NOT_FOUND) or
do (PERMISSION_DENIED) and a stale version (ABORTED); load what else the decision reads
(a job's open run, a task's subtasks); let the service decide, a pure function of what
was loaded and the time (a Change: the resource after it, the rows to write with the
versions they were read at, the other writes it asks for, the events); then write: the
other writes first (one that is conditional and finds its condition gone leaves the whole
change unwritten), the rows with their version checks; record the events, commit. A call
that named no version is tried again on the resource as it now is when a concurrent
change won the race.
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


class Write(Protocol):
    """A write a decision asks for besides its rows (a job's run opened or closed), as data;
    the skeleton does it, before the rows."""

    def apply(self, work: UnitOfWork, /) -> bool:
        """Write; False when the write is conditional and its condition no longer holds."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Change(Generic[R]):
    """What a decision makes of a resource: the resource after it, each row to write with
    the version it was read at, the other writes it asks for, and the events to record."""

    after: R
    writes: Sequence[tuple[R, int]] = ()
    events: Sequence[Event] = ()
    also: Sequence[Write] = ()

    @staticmethod
    def nothing(resource: R) -> Change[R]:
        """No change at all: nothing written, no event."""
        return Change(resource)

    @staticmethod
    def of(before: R, after: R, events: Sequence[Event], also: Sequence[Write] = ()) -> Change[R]:
        """``before`` becomes ``after`` (written over the version read), with ``events``."""
        return Change(after, ((after, before.version),), events, also)


C = TypeVar("C")
# What a decision reads besides the resource, loaded in the change's transaction.
Load = Callable[[UnitOfWork, R], C]
# The decision: pure, from the resource, what was loaded and the time.
Decide = Callable[[R, C, datetime], OperationResult[Change[R]]]


def nothing_more(work: UnitOfWork, resource: object) -> None:
    """The load of a decision that reads nothing but the resource."""
    return None


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
    decide: Decide[R, C],
    load: Load[R, C],
    first: Callable[[UnitOfWork], OperationResult[Never] | None] | None = None,
) -> OperationResult[R]:
    """Load, authorize, load what ``decide`` reads, decide, write, record the events, commit.
    ``first``, when given, may refuse before the resource is even looked at (another
    resource the call needs, or the scheduler's fence, whose refusal comes first)."""

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
            decided = decide(resource, load(work, resource), clock.now())
            if not decided.ok:
                return decided.as_failure()
            made = decided.value
            if not made.writes:
                # Nothing changes: a decision that asks for no row asks for nothing else.
                assert not made.also and not made.events, "a change without rows writes nothing"
                return OperationResult.success(made.after)
            for write in made.also:
                if not write.apply(work):
                    # Its condition is gone (a heartbeat came first): nothing is written,
                    # not even the writes before it.
                    work.rollback()
                    return OperationResult.success(resource)
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
