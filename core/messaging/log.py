"""The event log as core sees it: events recorded in a unit of work, read back by sequence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from core.messaging.events import Event


class EventRecorder:
    """Collects the events of one unit of work until it commits."""

    def __init__(self) -> None:
        self.pending: list[Event] = []

    def append(self, *events: Event) -> None:
        """Record ``events``; they are stored in the log with the transaction's changes."""
        self.pending.extend(events)


class EventStore(Protocol):
    """Stores events in the log within the current transaction and reads them back."""

    def store(self, events: Sequence[Event]) -> list[Event]:
        """Append ``events`` in order and return them with their sequences."""
        ...

    def read_after(self, after_sequence: int, limit: int) -> list[Event]:
        """Committed events with a sequence above ``after_sequence``, in order."""
        ...

    def read_tenant(self, tenant: str, after_sequence: int, through: int, limit: int) -> list[Event]:
        """Committed events of ``tenant`` with a sequence in (after_sequence, through], in order."""
        ...

    def bounds(self) -> tuple[int, int]:
        """(oldest sequence kept, last sequence assigned); (0, 0) for an empty log."""
        ...

    def prune(self, older_than: datetime) -> int:
        """Delete the prefix of the log up to the last event before ``older_than``; return how many."""
        ...


class PositionStore(Protocol):
    """Where durable subscribers keep how far they have processed the log."""

    def get(self, name: str) -> int:
        """The last sequence ``name`` processed; 0 when it never ran."""
        ...

    def advance(self, name: str, expected: int, position: int) -> None:
        """Move ``name`` from ``expected`` to ``position``; StaleVersionError if another got there first."""
        ...
