"""EventFeed over the in-memory log: replay, live tail, filters, visibility, limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import Any

import pytest

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.common.result import ErrorCode
from core.messaging.bus import MessageBus
from core.messaging.events import Event
from core.messaging.feed import EventFeed, EventFilter, Heartbeat, StreamEnded
from core.services.catalog import can_see
from core.services.event_log import EventLogReader
from core.services.jobs.service import JobService
from core.services.jobs.types import JobCreate
from core.services.tasks.service import TaskService
from core.services.tasks.types import TaskCreate
from core.services.unit_of_work import UnitOfWork
from modules.memory import InMemoryUnitOfWorkFactory

ANN = Actor(id="ann", tenant="acme", roles=frozenset({"member"}))
OPS = Actor(id="ops", tenant="acme", roles=frozenset({"operator"}))
BOB = Actor(id="bob", tenant="acme", roles=frozenset({"member"}))
OTHER = Actor(id="ops", tenant="globex", roles=frozenset({"admin"}))


class RecordingLog:
    """The log reader of the server, noting the tenants replays read and running
    ``before_read`` (the test's interference) before each read of events."""

    def __init__(self, reader: EventLogReader) -> None:
        self.reader = reader
        self.tenant_reads: list[str] = []
        self.before_read: Callable[[], None] = lambda: None

    async def read_after(self, after_sequence: int, limit: int) -> list[Event]:
        self.before_read()
        return await self.reader.read_after(after_sequence, limit)

    async def read_tenant(self, tenant: str, after_sequence: int, through: int, limit: int) -> list[Event]:
        self.tenant_reads.append(tenant)
        self.before_read()
        return await self.reader.read_tenant(tenant, after_sequence, through, limit)

    async def bounds(self) -> tuple[int, int]:
        return await self.reader.bounds()


class World:
    """Services on one in-memory store, and a feed reading its log."""

    def __init__(
        self,
        clock: FakeClock,
        buffer_size: int = 1000,
        streams_per_actor: int = 0,
        *,
        tenant_reads: bool = True,
    ) -> None:
        self.bus = MessageBus()
        self.uow = InMemoryUnitOfWorkFactory(publish=self.bus.publish)
        self.jobs = JobService(uow=self.uow, clock=clock)
        self.tasks = TaskService(uow=self.uow, jobs=self.jobs, clock=clock)
        self.log = RecordingLog(EventLogReader(uow=self.uow))
        self.feed = EventFeed(
            log=self.log,
            visible=can_see,
            replay_by_tenant=tenant_reads,
            buffer_size=buffer_size,
            batch_size=7,
            poll_interval=0.05,
            streams_per_actor=streams_per_actor,
        )
        self.bus.subscribe("*", self.feed.on_event)

    def make_jobs(self, count: int, by: Actor = ANN) -> None:
        for n in range(count):
            self.jobs.create_job(by, JobCreate(name=f"j{n}", kind="k"))


async def take(stream: AsyncIterator[Any], count: int, timeout: float = 5.0) -> list[Any]:
    items = []
    async with asyncio.timeout(timeout):
        while len(items) < count:
            items.append(await anext(stream))
    return items


def sequences(items: list[Any]) -> list[int]:
    return [item.sequence for item in items if isinstance(item, Event)]


@pytest.fixture
def world(clock: FakeClock) -> World:
    return World(clock)


def run(coroutine_factory: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_factory())


@pytest.mark.parametrize("tenant_reads", [True, False], ids=["replay-by-tenant", "replay-of-the-whole-log"])
def test_replay_then_live_with_no_gap_and_no_duplicate(clock: FakeClock, tenant_reads: bool) -> None:
    world = World(clock, tenant_reads=tenant_reads)

    async def scenario() -> list[int]:
        await world.feed.start()
        world.make_jobs(10)
        stream = world.feed.subscribe(OPS, EventFilter(), after_sequence=3)
        first = await take(stream, 5)
        world.make_jobs(10)  # while the subscriber is between replay and live
        rest = await take(stream, 12)
        await world.feed.close()
        return sequences(first + rest)

    assert run(scenario) == list(range(4, 21))


def test_from_now_skips_the_past(world: World) -> None:
    async def scenario() -> list[int]:
        world.make_jobs(3)
        await world.feed.start()
        stream = world.feed.subscribe(OPS, EventFilter())
        waiting = asyncio.ensure_future(take(stream, 2))
        await asyncio.sleep(0.01)
        world.make_jobs(2)
        got = await waiting
        await world.feed.close()
        return sequences(got)

    assert run(scenario) == [4, 5]


def test_filters_visibility_and_tenants(world: World) -> None:
    async def scenario() -> dict[str, list[str]]:
        await world.feed.start()
        job = world.jobs.create_job(ANN, JobCreate(name="mine", kind="k")).value
        world.jobs.create_job(BOB, JobCreate(name="bob's", kind="k"))
        task = world.tasks.create_task(BOB, TaskCreate(title="for ann", assignee="ann", job_id=None)).value
        world.jobs.start_job(OPS, job.id)
        world.jobs.create_job(OTHER, JobCreate(name="elsewhere", kind="k"))
        seen: dict[str, list[str]] = {}
        cases = {
            "ann": (ANN, EventFilter()),
            "ops-jobs-started": (OPS, EventFilter.of(types=["job.started", "job.status_changed"])),
            "ops-task": (OPS, EventFilter.of(resource_ids=[task.id])),
            "ops-job": (OPS, EventFilter.of(job_id=job.id)),
            "other": (OTHER, EventFilter()),
        }
        for name, (actor, wanted) in cases.items():
            stream = world.feed.subscribe(actor, wanted, after_sequence=0, heartbeat=0.05)
            items = await take(stream, 12, timeout=1)
            seen[name] = [i.type for i in items if isinstance(i, Event)]
            await stream.aclose()
        await world.feed.close()
        del task
        return seen

    seen = run(scenario)
    assert seen["ann"] == [
        "job.created",
        "task.created",
        "task.assigned",
        "job.started",
        "job.status_changed",
    ]
    assert seen["ops-jobs-started"] == ["job.started", "job.status_changed"]
    assert seen["ops-task"] == ["task.created", "task.assigned"]
    assert seen["ops-job"] == ["job.created", "job.started", "job.status_changed"]
    assert seen["other"] == ["job.created"]


def test_heartbeats_carry_the_position(world: World) -> None:
    async def scenario() -> list[Any]:
        await world.feed.start()
        stream = world.feed.subscribe(OPS, EventFilter.of(types=["task.*"]), heartbeat=0.05)
        waiting = asyncio.ensure_future(take(stream, 1))
        await asyncio.sleep(0.01)
        world.make_jobs(2)
        got = await waiting
        await world.feed.close()
        return got

    assert run(scenario) == [Heartbeat(2)]


def test_a_slow_subscriber_is_cut_and_resumes_without_loss(clock: FakeClock) -> None:
    world = World(clock, buffer_size=5)

    async def scenario() -> tuple[list[int], list[int], ErrorCode, int]:
        await world.feed.start()
        slow = world.feed.subscribe(OPS, EventFilter(), after_sequence=0)
        fast = world.feed.subscribe(OPS, EventFilter(), after_sequence=0)
        slow_first = asyncio.ensure_future(anext(slow))  # joins the live tail, then stops reading
        fast_seen = asyncio.ensure_future(take(fast, 30))
        await asyncio.sleep(0.01)
        for _ in range(30):
            world.make_jobs(1)
            await asyncio.sleep(0.002)
        fast_items = await fast_seen
        received = [(await slow_first).sequence]
        with pytest.raises(StreamEnded) as ended:
            async for item in slow:
                received.append(item.sequence)
        last = ended.value.error.details["last_sequence"]
        resumed = await take(world.feed.subscribe(OPS, EventFilter(), after_sequence=last), 30 - last)
        await world.feed.close()
        return sequences(fast_items), received + sequences(resumed), ended.value.error.code, last

    fast, slow, code, last = run(scenario)
    assert code is ErrorCode.RESOURCE_EXHAUSTED
    assert fast == list(range(1, 31))
    assert slow == list(range(1, 31))
    assert last < 30


def test_resume_points_outside_the_log_are_out_of_range(world: World, clock: FakeClock) -> None:
    async def scenario() -> list[tuple[ErrorCode, dict[str, Any]]]:
        world.make_jobs(3)
        clock.advance(timedelta(days=10))
        world.make_jobs(2)
        with world.uow() as work:
            work.log.prune(clock.now() - timedelta(days=1))
            work.commit()
        await world.feed.start()
        outcomes = []
        for after in (1, 9, -1):
            with pytest.raises(StreamEnded) as ended:
                await anext(world.feed.subscribe(OPS, EventFilter(), after_sequence=after))
            outcomes.append((ended.value.error.code, dict(ended.value.error.details)))
        resumed = await take(world.feed.subscribe(OPS, EventFilter(), after_sequence=3), 2)
        await world.feed.close()
        assert sequences(resumed) == [4, 5]
        return outcomes

    outcomes = run(scenario)
    assert outcomes[0] == (ErrorCode.OUT_OF_RANGE, {"oldest_sequence": 4, "last_sequence": 5})
    assert [code for code, _ in outcomes] == [ErrorCode.OUT_OF_RANGE] * 3


def test_closing_ends_streams_with_unavailable(world: World) -> None:
    async def scenario() -> tuple[ErrorCode, ErrorCode]:
        await world.feed.start()
        world.make_jobs(2)
        stream = world.feed.subscribe(OPS, EventFilter(), after_sequence=0)
        await take(stream, 2)
        await world.feed.close()
        with pytest.raises(StreamEnded) as live:
            await anext(stream)
        with pytest.raises(StreamEnded) as late:
            await anext(world.feed.subscribe(OPS, EventFilter()))
        assert live.value.error.details["last_sequence"] == 2
        return live.value.error.code, late.value.error.code

    assert run(scenario) == (ErrorCode.UNAVAILABLE, ErrorCode.UNAVAILABLE)


def test_a_failing_read_is_retried(world: World, caplog: pytest.LogCaptureFixture) -> None:
    failures = iter([RuntimeError("db blip")])

    def flaky() -> None:
        error = next(failures, None)
        if error is not None:
            raise error

    world.log.before_read = flaky

    async def scenario() -> list[int]:
        await world.feed.start()
        stream = world.feed.subscribe(OPS, EventFilter())
        waiting = asyncio.ensure_future(take(stream, 2))
        await asyncio.sleep(0.01)
        world.make_jobs(2)
        got = await waiting
        await world.feed.close()
        return sequences(got)

    assert run(scenario) == [1, 2]
    assert "reading the event log failed" in caplog.text


def test_bad_type_patterns_are_refused() -> None:
    with pytest.raises(ValueError, match="invalid topic pattern"):
        EventFilter.of(types=["job .*"])


@pytest.mark.parametrize("tenant_reads", [True, False], ids=["replay-by-tenant", "replay-of-the-whole-log"])
def test_a_replay_overtaken_by_pruning_ends_out_of_range(clock: FakeClock, tenant_reads: bool) -> None:
    """The log is pruned under a subscriber that is still replaying it."""
    world = World(clock, tenant_reads=tenant_reads)
    replaying = False

    def prune_if_replaying() -> None:
        if replaying:
            with world.uow() as work:
                work.log.prune(clock.now() + timedelta(seconds=1))  # everything
                work.commit()

    async def scenario() -> ErrorCode:
        nonlocal replaying
        world.make_jobs(5)
        await world.feed.start()
        world.make_jobs(2)
        await asyncio.sleep(0.1)  # the tail has read up to 7
        world.log.before_read = prune_if_replaying
        replaying = True
        with pytest.raises(StreamEnded) as ended:
            await anext(world.feed.subscribe(OPS, EventFilter(), after_sequence=0))
        await world.feed.close()
        return ended.value.error.code

    assert run(scenario) is ErrorCode.OUT_OF_RANGE


def test_an_actor_holds_at_most_its_share_of_streams(clock: FakeClock) -> None:
    world = World(clock, streams_per_actor=2)

    async def scenario() -> tuple[object, list[int]]:
        await world.feed.start()
        world.make_jobs(1)
        first = world.feed.subscribe(OPS, EventFilter(), after_sequence=0)
        second = world.feed.subscribe(OPS, EventFilter(), after_sequence=0)
        await take(first, 1)
        await take(second, 1)
        with pytest.raises(StreamEnded) as refused:
            await anext(world.feed.subscribe(OPS, EventFilter(), after_sequence=0))
        # Another actor of the tenant is counted apart; a closed stream frees its place.
        other = await take(world.feed.subscribe(ANN, EventFilter(), after_sequence=0), 1)
        await first.aclose()
        again = await take(world.feed.subscribe(OPS, EventFilter(), after_sequence=0), 1)
        await world.feed.close()
        return refused.value.error, [len(other), len(again)]

    error, taken = run(scenario)
    assert error.code is ErrorCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
    assert error.details["open_streams"] == 2  # type: ignore[attr-defined]
    assert taken == [1, 1]


def test_a_replay_reads_only_its_tenant(clock: FakeClock) -> None:
    """Another tenant's events are never read for a replay: a busy neighbour costs nothing."""
    world = World(clock)
    globex = Actor(id="gx", tenant="globex", roles=frozenset({"admin"}))

    async def scenario() -> tuple[list[int], list[str]]:
        await world.feed.start()
        world.make_jobs(30, by=ANN)
        world.make_jobs(3, by=globex)
        world.make_jobs(30, by=ANN)
        await asyncio.sleep(0.1)  # the tail is at the end of the log: the stream must replay
        stream = world.feed.subscribe(OTHER, EventFilter(), after_sequence=0)
        got = await take(stream, 3)
        await world.feed.close()
        return sequences(got), world.log.tenant_reads

    got, reads = run(scenario)
    assert got == [31, 32, 33]
    assert set(reads) == {"globex"}


def test_the_log_reader_reads_in_read_only_units_of_work_off_the_event_loop(clock: FakeClock) -> None:
    store = InMemoryUnitOfWorkFactory()
    opened: list[tuple[bool, threading.Thread]] = []

    def uow(*, read_only: bool = False) -> UnitOfWork:
        opened.append((read_only, threading.current_thread()))
        return store(read_only=read_only)

    JobService(uow=store, clock=clock).create_job(ANN, JobCreate(name="j", kind="k"))
    reader = EventLogReader(uow=uow)

    async def scenario() -> tuple[object, ...]:
        return (
            await reader.bounds(),
            sequences(await reader.read_after(0, 10)),
            await reader.read_tenant("globex", 0, 1, 10),
            threading.current_thread(),
        )

    bounds, read, other_tenant, loop_thread = asyncio.run(scenario())
    assert (bounds, read, other_tenant) == ((1, 1), [1], [])
    assert [read_only for read_only, _ in opened] == [True] * 3
    assert all(thread is not loop_thread for _, thread in opened)
