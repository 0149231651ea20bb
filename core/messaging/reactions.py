"""Durable reactions: handlers driven from the event log with a stored position.

A reaction's effects and the advance of its position commit in one transaction, so
each event is reacted to exactly once even if the process stops in between, and two
replicas running the same reaction cannot both apply it (the position is compared and
set). Handlers run as the service's system actor and record their own events.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Generic, Protocol, Self, TypeVar

from core.common.errors import StorageError
from core.messaging.bus import compile_pattern
from core.messaging.events import Event
from core.messaging.log import EventRecorder, EventStore, PositionStore

log = logging.getLogger(__name__)


class ReactionWork(Protocol):
    """What the reactor needs of a transaction: the log, the reactions' positions, a place
    for the events the handlers record, and commit. The services' unit of work is one; its
    handlers get it whole."""

    log: EventStore
    positions: PositionStore
    events: EventRecorder

    def __enter__(self) -> Self: ...

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    def commit(self) -> list[Event]: ...


W = TypeVar("W", bound=ReactionWork)
W_co = TypeVar("W_co", bound=ReactionWork, covariant=True)


class ReactionWorkFactory(Protocol[W_co]):
    """Opens the reactor's transactions; ``read_only`` ones only look."""

    def __call__(self, *, read_only: bool = False) -> W_co: ...


@dataclasses.dataclass(frozen=True, slots=True)
class Reaction(Generic[W]):
    """A named, durable subscription: ``handle`` gets every event matching ``patterns``."""

    name: str
    patterns: tuple[str, ...]
    handle: Callable[[W, Event], None]
    _regexes: tuple[re.Pattern[str], ...] = dataclasses.field(default=(), repr=False, compare=False)

    @staticmethod
    def of(name: str, patterns: Sequence[str], handle: Callable[[W, Event], None]) -> Reaction[W]:
        """A reaction; ValueError for a malformed pattern."""
        return Reaction(name, tuple(patterns), handle, tuple(compile_pattern(p) for p in patterns))

    def wants(self, event: Event) -> bool:
        """True when ``event`` matches one of the patterns."""
        return any(regex.match(event.type) for regex in self._regexes)


class Reactor(Generic[W]):
    """Runs reactions over the log, a batch per transaction."""

    def __init__(
        self, *, uow: ReactionWorkFactory[W], reactions: Sequence[Reaction[W]], batch_size: int = 200
    ) -> None:
        self._uow = uow
        self._reactions = tuple(reactions)
        self._batch_size = batch_size

    def patterns(self) -> list[str]:
        """Every event-type pattern some reaction wants."""
        return sorted({pattern for reaction in self._reactions for pattern in reaction.patterns})

    def run_once(self) -> int:
        """Process one batch per reaction; return how many events were read."""
        return sum(self._run(reaction) for reaction in self._reactions)

    def run_until_idle(self, max_rounds: int = 1000) -> int:
        """Process until no reaction finds a new event (reactions may emit events of their own)."""
        total = 0
        for _ in range(max_rounds):
            processed = self.run_once()
            total += processed
            if processed == 0:
                return total
        return total

    def _run(self, reaction: Reaction[W]) -> int:
        try:
            try:
                return self._batch(reaction, poison=None)
            except _HandlerFailed as failed:
                # Nothing of the batch was kept: redo it up to the failing event and step over that one.
                log.error(
                    "reaction %s failed on %s #%d; skipping that event",
                    reaction.name,
                    failed.event.type,
                    failed.event.sequence,
                    exc_info=failed.__cause__,
                )
                return self._batch(reaction, poison=failed.event.sequence)
        except StorageError as exc:
            # A conflict with a concurrent change or replica: nothing was applied; retry later.
            log.info("reaction %s will retry: %s", reaction.name, exc)
            return 0

    def _batch(self, reaction: Reaction[W], *, poison: int | None) -> int:
        # Look before taking a write transaction: most wake-ups find nothing new.
        with self._uow(read_only=True) as look:
            if look.positions.get(reaction.name) >= look.log.bounds()[1]:
                return 0
        with self._uow() as work:
            position = work.positions.get(reaction.name)
            batch = work.log.read_after(position, self._batch_size)
            if not batch:
                return 0
            last = position
            for event in batch:
                last = event.sequence
                if event.sequence == poison:
                    break
                if reaction.wants(event):
                    try:
                        reaction.handle(work, event)
                    except StorageError:
                        raise
                    except Exception as exc:
                        raise _HandlerFailed(event) from exc
            work.positions.advance(reaction.name, position, last)
            work.commit()
            return last - position


class _HandlerFailed(Exception):
    def __init__(self, event: Event) -> None:
        super().__init__(f"{event.type} #{event.sequence}")
        self.event = event
