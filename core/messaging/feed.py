"""EventFeed: resumable, filtered, bounded event streams read from the durable log.

One tail per process reads the log in sequence order and hands each event to the live
subscribers; a new subscriber first replays the log from its resume point and joins the
live tail only once it has caught up, so it sees every event once, in order. The tail
never trusts a wake-up hint (the bus, PostgreSQL NOTIFY): it always reads the log by
sequence, and it polls as a fallback. A subscriber that falls behind by more than its
buffer is ended with RESOURCE_EXHAUSTED; nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import re
import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Never, Protocol

from core.common.actor import Actor
from core.common.failures import FailureLog
from core.common.result import OperationError, OperationResult
from core.messaging.bus import compile_pattern
from core.messaging.events import Event

log = logging.getLogger(__name__)

Visibility = Callable[[Actor, Event], bool]


class LogReader(Protocol):
    """The committed event log as the feed reads it, without blocking the event loop
    (core/services/event_log.py reads it through units of work)."""

    async def read_after(self, after_sequence: int, limit: int) -> list[Event]:
        """Committed events with a sequence above ``after_sequence``, in order."""
        ...

    async def read_tenant(self, tenant: str, after_sequence: int, through: int, limit: int) -> list[Event]:
        """Committed events of ``tenant`` in (after_sequence, through], in order."""
        ...

    async def bounds(self) -> tuple[int, int]:
        """(oldest sequence kept, last sequence assigned); (0, 0) for an empty log."""
        ...


@dataclasses.dataclass(frozen=True, slots=True)
class Heartbeat:
    """No event for a while: the stream is alive and has considered the log up to ``sequence``."""

    sequence: int


class StreamEnded(Exception):
    """A subscription ended for a reason the client should act on (resume, reconnect)."""

    def __init__(self, error: OperationError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class EventFilter:
    """What a subscriber wants; empty fields do not filter."""

    types: tuple[str, ...] = ()
    resource_ids: frozenset[uuid.UUID] = frozenset()
    job_id: uuid.UUID | None = None
    _patterns: tuple[re.Pattern[str], ...] = dataclasses.field(default=(), repr=False, compare=False)

    @staticmethod
    def of(
        types: Iterable[str] = (), resource_ids: Iterable[uuid.UUID] = (), job_id: uuid.UUID | None = None
    ) -> EventFilter:
        """A filter; ValueError for a malformed type pattern."""
        types = tuple(types)
        return EventFilter(
            types=types,
            resource_ids=frozenset(resource_ids),
            job_id=job_id,
            _patterns=tuple(compile_pattern(t) for t in types),
        )

    def matches(self, event: Event) -> bool:
        """True when ``event`` passes every given criterion."""
        if self._patterns and not any(p.match(event.type) for p in self._patterns):
            return False
        if self.resource_ids and event.resource_id not in self.resource_ids:
            return False
        return self.job_id is None or event.job_id == self.job_id


class _Subscriber:
    """One live subscription: what it wants, its buffer and how far it has got."""

    def __init__(self, actor: Actor, wanted: EventFilter, capacity: int, position: int) -> None:
        self.actor = actor
        self.wanted = wanted
        self.capacity = capacity
        self.position = position
        self.delivered = position
        self.buffer: collections.deque[Event] = collections.deque()
        # Why the subscription ends, worded once the last delivered sequence is known.
        self.ended: Callable[[int], OperationError] | None = None
        self.signal = asyncio.Event()

    def offer(self, event: Event, visible: Visibility) -> None:
        if self.ended is not None or event.sequence <= self.position:
            return
        self.position = event.sequence
        if not self.wanted.matches(event) or not visible(self.actor, event):
            return
        if len(self.buffer) >= self.capacity:
            self.end(self._fell_behind)
            return
        self.buffer.append(event)
        self.signal.set()

    def _fell_behind(self, delivered: int) -> OperationError:
        return _error(
            OperationResult.resource_exhausted(
                f"the subscriber fell more than {self.capacity} events behind; "
                f"resume after sequence {delivered}",
                last_sequence=delivered,
            )
        )

    def end(self, reason: Callable[[int], OperationError]) -> None:
        self.ended = reason
        self.signal.set()


class EventFeed:
    """Serves subscriptions from the event log; one per process."""

    def __init__(
        self,
        *,
        log: LogReader,
        visible: Visibility,
        replay_by_tenant: bool = True,
        buffer_size: int = 1000,
        batch_size: int = 500,
        poll_interval: float = 1.0,
        streams_per_actor: int = 0,
    ) -> None:
        self._log = log
        # Replays read only the subscriber's tenant (an index serves it); without, the whole
        # log, filtered.
        self._replay_by_tenant = replay_by_tenant
        # How many streams one actor (tenant and id) may hold open at once; 0: no limit.
        self._streams_per_actor = streams_per_actor
        self._open: dict[tuple[str, str], int] = {}
        self._visible = visible
        self._buffer_size = buffer_size
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._live: set[_Subscriber] = set()
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing: str | None = None
        self._stopping = False
        self.position = 0

    async def start(self) -> None:
        """Begin tailing the log from its current end."""
        self._loop = asyncio.get_running_loop()
        self.position = (await self._log.bounds())[1]
        self._task = asyncio.create_task(self._tail(), name="event-feed-tail")

    @property
    def stream_count(self) -> int:
        """Live subscriptions (streams past their replay)."""
        return len(self._live)

    def lag_max(self) -> int:
        """Events buffered for the slowest live subscription."""
        return max((len(s.buffer) for s in self._live), default=0)

    def on_event(self, event: Event) -> None:
        """An event committed in this process (a bus handler): the tail reads the log."""
        self.wake()

    def on_notice(self, notice: str | None) -> None:
        """A commit in some process (the relay's notice): the tail reads the log."""
        self.wake()

    def wake(self) -> None:
        """A hint that events were committed; safe to call from any thread."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            if asyncio.get_running_loop() is loop:
                self._wake.set()
                return
        except RuntimeError:
            pass
        loop.call_soon_threadsafe(self._wake.set)

    async def close(self, reason: str = "the server is shutting down; reconnect and resume") -> None:
        """End every subscription with UNAVAILABLE and stop tailing."""
        self._closing = reason
        for subscriber in list(self._live):
            subscriber.end(self._shutting_down)
        if self._task is not None:
            # Stop by flag, not only by cancellation: a cancellation that lands as the tail
            # wakes up can be lost (asyncio.wait_for before Python 3.12).
            self._stopping = True
            self._wake.set()
            try:
                async with asyncio.timeout(5):
                    await asyncio.shield(self._task)
            except TimeoutError:
                self._task.cancel()

    def _shutting_down(self, delivered: int) -> OperationError:
        return _error(OperationResult.unavailable(self._closing or "unavailable", last_sequence=delivered))

    async def _tail(self) -> None:
        failures = FailureLog(log, "reading the event log")
        while not self._stopping:
            await _wait(self._wake, self._poll_interval)
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._catch_up()
                failures.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                failures.failed(error)

    async def _catch_up(self) -> None:
        if not self._live:
            # Nobody is following: learn how far the log goes without reading (and decoding)
            # what nobody will be sent. A subscriber that joined meanwhile reads it normally.
            last = (await self._log.bounds())[1]
            if not self._live:
                self.position = max(self.position, last)
                return
        while True:
            batch = await self._log.read_after(self.position, self._batch_size)
            for event in batch:
                self.position = event.sequence
                for subscriber in list(self._live):
                    subscriber.offer(event, self._visible)
            if len(batch) < self._batch_size:
                return

    async def subscribe(
        self,
        actor: Actor,
        wanted: EventFilter,
        *,
        after_sequence: int | None = None,
        heartbeat: float = 15.0,
    ) -> AsyncIterator[Event | Heartbeat]:
        """Events for ``actor`` matching ``wanted``: after ``after_sequence`` or from now.

        Ends by raising StreamEnded: OUT_OF_RANGE for a resume point outside the log,
        RESOURCE_EXHAUSTED when the subscriber falls behind, UNAVAILABLE on shutdown.
        """
        if self._closing is not None:
            _raise(self._shutting_down(after_sequence or 0))
        key = (actor.tenant, actor.id)
        held = self._open.get(key, 0)
        if self._streams_per_actor and held >= self._streams_per_actor:
            _raise(
                _error(
                    OperationResult.resource_exhausted(
                        f"actor {actor.id} already has {held} open streams, the most one actor may hold; "
                        "close one first",
                        open_streams=held,
                    )
                )
            )
        self._open[key] = held + 1
        try:
            async for item in self._stream(actor, wanted, after_sequence, heartbeat):
                yield item
        finally:
            remaining = self._open.get(key, 1) - 1
            if remaining:
                self._open[key] = remaining
            else:
                self._open.pop(key, None)

    async def _stream(
        self, actor: Actor, wanted: EventFilter, after_sequence: int | None, heartbeat: float
    ) -> AsyncIterator[Event | Heartbeat]:
        oldest, last = await self._log.bounds()
        if after_sequence is None:
            position = last
        else:
            self._check_resume_point(after_sequence, oldest, last)
            position = after_sequence
        subscriber = _Subscriber(actor, wanted, self._buffer_size, position)
        try:
            async for event in self._replay(subscriber):
                yield event
            async for item in self._follow(subscriber, heartbeat):
                yield item
        finally:
            self._live.discard(subscriber)

    @staticmethod
    def _check_resume_point(after_sequence: int, oldest: int, last: int) -> None:
        first_kept = oldest if oldest else last + 1
        if after_sequence < 0 or after_sequence > last:
            _raise(
                _error(
                    OperationResult.out_of_range(
                        f"after_sequence {after_sequence} is outside the log (last sequence {last})",
                        last_sequence=last,
                        oldest_sequence=first_kept,
                    )
                )
            )
        if after_sequence + 1 < first_kept:
            _raise(
                _error(
                    OperationResult.out_of_range(
                        f"events after {after_sequence} were pruned; the oldest available is {first_kept}",
                        oldest_sequence=first_kept,
                        last_sequence=last,
                    )
                )
            )

    async def _replay(self, subscriber: _Subscriber) -> AsyncIterator[Event]:
        """Read the log from the subscriber's position until it meets the live tail."""
        while True:
            if subscriber.position >= self.position:
                # No await between this check and joining: the tail cannot move in between.
                self._live.add(subscriber)
                return
            if self._replay_by_tenant:
                async for event in self._replay_tenant(subscriber):
                    yield event
                continue
            batch = await self._log.read_after(subscriber.position, self._batch_size)
            for event in batch:
                subscriber.position = event.sequence
                if subscriber.wanted.matches(event) and self._visible(subscriber.actor, event):
                    subscriber.delivered = event.sequence
                    yield event
            if not batch and subscriber.position < self.position:
                # Nothing after our position, yet the tail is further on: what lay between
                # was pruned while we replayed (a commit the tail saw would be visible to us).
                oldest, last = await self._log.bounds()
                self._check_resume_point(subscriber.position, oldest, last)
                await asyncio.sleep(0.01)

    async def _replay_tenant(self, subscriber: _Subscriber) -> AsyncIterator[Event]:
        """One batch of the subscriber's tenant's events up to the tail's current position."""
        start, through = subscriber.position, self.position
        batch = await self._log.read_tenant(subscriber.actor.tenant, start, through, self._batch_size)
        # Pruning removes a prefix: if the oldest event kept is past where this read began,
        # events in between were gone before they could be read.
        oldest, last = await self._log.bounds()
        self._check_resume_point(start, oldest, last)
        for event in batch:
            subscriber.position = event.sequence
            if subscriber.wanted.matches(event) and self._visible(subscriber.actor, event):
                subscriber.delivered = event.sequence
                yield event
        if len(batch) < self._batch_size:
            # Every event of the tenant up to `through` has been read.
            subscriber.position = max(subscriber.position, through)

    async def _follow(self, subscriber: _Subscriber, heartbeat: float) -> AsyncIterator[Event | Heartbeat]:
        while True:
            if subscriber.buffer:
                event = subscriber.buffer.popleft()
                subscriber.delivered = event.sequence
                yield event
                continue
            if subscriber.ended is not None:
                _raise(subscriber.ended(subscriber.delivered))
            subscriber.signal.clear()
            if not await _wait(subscriber.signal, heartbeat):
                yield Heartbeat(subscriber.position)


async def _wait(signal: asyncio.Event, seconds: float) -> bool:
    """Wait for ``signal`` at most ``seconds``; True when it was set.

    asyncio.timeout, unlike asyncio.wait_for before Python 3.12, never loses a
    cancellation that arrives as the event is set.
    """
    try:
        async with asyncio.timeout(seconds):
            await signal.wait()
    except TimeoutError:
        return False
    return True


def _error(result: OperationResult[Never]) -> OperationError:
    assert result.error is not None
    return result.error


def _raise(error: OperationError) -> Never:
    raise StreamEnded(error)
