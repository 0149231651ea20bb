"""The unit of work: one transaction over the repositories and the event log."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self

from core.common import context
from core.common.errors import StorageUnavailableError
from core.messaging.events import Event
from core.messaging.log import EventRecorder, EventStore, PositionStore

if TYPE_CHECKING:
    from core.services.jobs.repository import JobRepository
    from core.services.tasks.repository import TaskRepository

log = logging.getLogger(__name__)

Publisher = Callable[[Sequence[Event]], None]
# What a commit tells the other processes besides "events committed" (the payload of
# PostgreSQL's NOTIFY): a short text computed from the commit's events.
Notice = Callable[[Sequence[Event]], str]


class LeaseStore(Protocol):
    """Leases that make one replica the leader (the scheduler's), as seen from a transaction."""

    def holds(self, name: str, token: int) -> bool:
        """True when lease ``name`` is still current at ``token``; it then cannot change
        hands until this unit of work ends."""
        ...


class UnitOfWork(Protocol):
    """A transaction: read, check, change, record events, commit; rolled back otherwise."""

    jobs: JobRepository
    tasks: TaskRepository
    events: EventRecorder
    log: EventStore
    positions: PositionStore
    leases: LeaseStore

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def commit(self) -> list[Event]:
        """Store the recorded events, commit, then deliver the events; return them."""
        ...

    def rollback(self) -> None:
        """Discard every change of this unit of work."""
        ...


# A leader's check, inside a unit of work, that it still holds its lease.
Fence = Callable[[UnitOfWork], bool]


class UnitOfWorkFactory(Protocol):
    """Opens units of work; ``read_only`` ones never write and may run concurrently."""

    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...


class BaseUnitOfWork:
    """Shared commit protocol: events are stored last, delivered only after the commit.

    Subclasses provide ``_begin``, ``_commit``, ``_rollback``, ``_close`` and the
    repositories; storing events last keeps the sequence lock held for the shortest time.
    A store that can take the sequences and commit in one step (one round trip, so no
    lock every writer needs is held while this process runs) overrides ``_store_and_commit``.
    """

    jobs: JobRepository
    tasks: TaskRepository
    log: EventStore
    positions: PositionStore
    leases: LeaseStore

    def __init__(self, *, publish: Publisher | None = None, read_only: bool = False) -> None:
        self._publish = publish
        self.read_only = read_only
        self.events = EventRecorder()
        self._committed = False

    def __enter__(self) -> Self:
        self.events = EventRecorder()
        self._committed = False
        self._begin()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            if not self._committed:
                self._rollback()
        finally:
            self._close()

    def commit(self) -> list[Event]:
        """Store the recorded events, commit, then deliver them to the bus."""
        if self.read_only:
            raise RuntimeError("a read-only unit of work cannot commit changes")
        remaining = context.time_remaining()
        if remaining is not None and remaining <= 0:
            # The caller has given up: a change it can no longer learn about must not happen.
            raise StorageUnavailableError("the call's deadline passed before its change committed")
        stored = self._store_and_commit(self.events.pending)
        self._committed = True
        self.events = EventRecorder()
        if stored and self._publish is not None:
            try:
                self._publish(stored)
            except Exception:
                log.exception("delivering %d committed events failed", len(stored))
        return stored

    def rollback(self) -> None:
        """Discard every change made so far."""
        self.events = EventRecorder()
        self._rollback()

    def _store_and_commit(self, pending: Sequence[Event]) -> list[Event]:
        stored = self.log.store(pending) if pending else []
        self._commit()
        return stored

    def _begin(self) -> None:
        raise NotImplementedError

    def _commit(self) -> None:
        raise NotImplementedError

    def _rollback(self) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError
