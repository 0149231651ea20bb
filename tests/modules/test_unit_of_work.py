"""The unit of work: one transaction, events stored with it and delivered only after commit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import Engine

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.common.ids import new_id
from core.messaging.bus import MessageBus
from core.messaging.events import Event, new_event
from core.services.jobs import types
from core.services.jobs.service import JobService
from core.services.jobs.types import Job, JobCreate
from core.services.unit_of_work import UnitOfWork, UnitOfWorkFactory
from modules.db import SqlAlchemyUnitOfWorkFactory
from tests.conftest import SQL_BACKENDS


def created(clock: FakeClock, tenant: str = "acme") -> tuple[Job, Event]:
    job = Job(
        id=new_id(),
        tenant=tenant,
        name="n",
        kind="k",
        owner="ann",
        created_at=clock.now(),
        updated_at=clock.now(),
    )
    actor = Actor(id="ann", tenant=tenant, roles=frozenset({"member"}))
    event = new_event(
        types.JobEventType.CREATED,
        types.job_event(job),
        actor=actor,
        clock=clock,
        resource_id=job.id,
        job_id=job.id,
    )
    return job, event


class TestCommitAndRollback:
    def test_committed_events_get_sequences_and_are_delivered_after_commit(
        self, uow: UnitOfWorkFactory, clock: FakeClock, delivered: list[Event]
    ) -> None:
        job, event = created(clock)
        with uow() as work:
            work.jobs.add(job)
            work.events.append(event)
            assert delivered == []
            stored = work.commit()
        assert [e.sequence for e in stored] == [1]
        assert delivered == stored
        with uow(read_only=True) as work:
            assert work.log.read_after(0, 10) == stored
            assert work.log.bounds() == (1, 1)

    def test_without_commit_nothing_is_stored_or_delivered(
        self, uow: UnitOfWorkFactory, clock: FakeClock, delivered: list[Event]
    ) -> None:
        job, event = created(clock)
        with uow() as work:
            work.jobs.add(job)
            work.events.append(event)

        def fail_midway() -> None:
            with uow() as work:
                work.jobs.add(job)
                work.events.append(event)
                raise RuntimeError("handler bug")

        with pytest.raises(RuntimeError):
            fail_midway()
        with uow(read_only=True) as work:
            assert work.jobs.get("acme", job.id) is None
            assert work.log.read_after(0, 10) == []
            assert work.log.bounds() == (0, 0)
        assert delivered == []

    def test_an_explicit_rollback_discards_recorded_events(
        self, uow: UnitOfWorkFactory, clock: FakeClock, delivered: list[Event]
    ) -> None:
        job, event = created(clock)
        with uow() as work:
            work.events.append(event)
            work.rollback()
            work.jobs.add(job)
        assert delivered == []

    def test_a_read_only_unit_of_work_cannot_commit(self, uow: UnitOfWorkFactory) -> None:
        with pytest.raises(RuntimeError), uow(read_only=True) as work:
            work.commit()

    def test_a_failing_subscriber_does_not_undo_the_operation(
        self, uow: UnitOfWorkFactory, bus: MessageBus, clock: FakeClock, caplog: pytest.LogCaptureFixture
    ) -> None:
        def broken(_: Event) -> None:
            raise ValueError("subscriber bug")

        bus.subscribe("job.*", broken)
        service = JobService(uow=uow, clock=clock)
        actor = Actor(id="ann", tenant="acme", roles=frozenset({"member"}))

        job = service.create_job(actor, JobCreate(name="n", kind="k")).value

        assert service.get_job(actor, job.id).ok
        assert "subscriber bug" in caplog.text

    @pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
    def test_a_failing_publisher_is_logged_and_the_commit_stands(
        self,
        backend: str,
        engine_for: Callable[[str], Engine],
        clock: FakeClock,
        caplog: pytest.LogCaptureFixture,
    ) -> None:
        def publish(_: object) -> None:
            raise ConnectionError("bus down")

        factory = SqlAlchemyUnitOfWorkFactory(engine_for(backend), publish=publish)
        job, event = created(clock)
        with factory() as work:
            work.jobs.add(job)
            work.events.append(event)
            work.commit()
        with factory(read_only=True) as work:
            assert work.jobs.get("acme", job.id) == job
        assert "delivering 1 committed events failed" in caplog.text

    def test_pruning_keeps_the_sequence_counter(self, uow: UnitOfWorkFactory, clock: FakeClock) -> None:
        for _ in range(3):
            job, event = created(clock)
            with uow() as work:
                work.jobs.add(job)
                work.events.append(event)
                work.commit()
            clock.advance(timedelta(hours=1))
        with uow() as work:
            assert work.log.prune(clock.now() - timedelta(hours=1, minutes=30)) == 2
            work.commit()
        with uow(read_only=True) as work:
            assert work.log.bounds() == (3, 3)
            assert [e.sequence for e in work.log.read_after(0, 10)] == [3]


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
class TestConcurrentWriters:
    def test_readers_never_see_a_later_sequence_before_an_earlier_one(
        self, uow: UnitOfWorkFactory, clock: FakeClock
    ) -> None:
        writers, per_writer = 6, 25
        errors: list[BaseException] = []
        done = threading.Event()
        observed: list[list[int]] = []

        def write() -> None:
            try:
                for _ in range(per_writer):
                    job, event = created(clock)
                    with uow() as work:
                        work.jobs.add(job)
                        work.events.append(event)
                        work.commit()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def read() -> None:
            while not done.is_set():
                with uow(read_only=True) as work:
                    observed.append([e.sequence for e in work.log.read_after(0, 100_000)])

        threads = [threading.Thread(target=write) for _ in range(writers)]
        reader = threading.Thread(target=read)
        reader.start()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        done.set()
        reader.join()

        assert errors == []
        total = writers * per_writer
        with uow(read_only=True) as work:
            assert [e.sequence for e in work.log.read_after(0, 100_000)] == list(range(1, total + 1))
        # Every snapshot a reader took was a gap-free prefix of the final log.
        for snapshot in observed:
            assert snapshot == list(range(1, len(snapshot) + 1))


_first_readers_lock = threading.Lock()
_first_readers: list[int] = []


class _BarrierUnitOfWork:
    """Wraps a unit of work so that the first readers of a job wait for each other
    (a retry after the race reads without waiting)."""

    def __init__(self, inner: UnitOfWork, barrier: threading.Barrier) -> None:
        self._inner = inner
        self._barrier = barrier

    def __enter__(self) -> UnitOfWork:
        work = self._inner.__enter__()
        original = work.jobs.get
        barrier = self._barrier

        def get(tenant: str, job_id: object) -> Job | None:
            job = original(tenant, job_id)
            with _first_readers_lock:
                first = _first_readers.pop() if _first_readers else None
            if first is not None:  # later reads (retries) pass straight through
                barrier.wait(timeout=10)
            return job

        work.jobs.get = get
        return work

    def __exit__(self, *exc: object) -> None:
        self._inner.__exit__(*exc)


@pytest.mark.postgres
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
@pytest.mark.parametrize(
    ("etag", "loser"),
    [(1, "ABORTED"), (None, "FAILED_PRECONDITION")],
    ids=["with-etag-the-loser-is-aborted", "without-etag-the-loser-retries-and-finds-it-running"],
)
def test_two_workers_racing_to_start_a_job_exactly_one_wins(
    uow: UnitOfWorkFactory, clock: FakeClock, delivered: list[Event], etag: int | None, loser: str
) -> None:
    """Both read version 1 before either writes; the row lock and the version check do the rest.

    A call that named the version fails for the change it guarded against; one that did not
    retries on the job as it now is, and is refused because the job is already RUNNING."""
    owner = Actor(id="ann", tenant="acme", roles=frozenset({"member"}))
    worker = Actor(id="w", tenant="acme", roles=frozenset({"operator"}))
    job = JobService(uow=uow, clock=clock).create_job(owner, JobCreate(name="n", kind="k")).value
    barrier = threading.Barrier(2)
    _first_readers[:] = [1, 2]

    def racing_uow(*, read_only: bool = False) -> UnitOfWork:
        inner = uow(read_only=read_only)
        return inner if read_only else _BarrierUnitOfWork(inner, barrier)

    racer = JobService(uow=racing_uow, clock=clock)
    results: list[object] = [None, None]

    def start(slot: int) -> None:
        results[slot] = racer.start_job(worker, job.id, expected_version=etag)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    codes = sorted(str(r.code) for r in results)
    assert codes == sorted([loser, "None"])
    plain = JobService(uow=uow, clock=clock)
    assert len(plain.get_job_history(worker, job.id).value.items) == 1
    assert plain.get_job(worker, job.id).value.version == 2
    assert [e.type for e in delivered].count("job.started") == 1


def test_pruning_removes_a_prefix_even_when_clocks_disagree(uow: UnitOfWorkFactory, clock: FakeClock) -> None:
    """Event 2 carries an earlier time than event 1; pruning by time must not leave a hole."""
    early, late = clock.now(), clock.now() + timedelta(hours=2)
    for at in (late, early, late):
        clock.set(at)
        job, event = created(clock)
        with uow() as work:
            work.jobs.add(job)
            work.events.append(event)
            work.commit()
    with uow() as work:
        assert work.log.prune(early + timedelta(hours=1)) == 2
        assert work.log.prune(early) == 0
        work.commit()
    with uow(read_only=True) as work:
        assert [e.sequence for e in work.log.read_after(0, 10)] == [3]


def test_a_tenant_s_events_are_read_alone_within_bounds(uow: UnitOfWorkFactory, clock: FakeClock) -> None:
    for tenant in ["acme", "globex", "acme", "acme", "globex", "acme"]:
        job, event = created(clock, tenant)
        with uow() as work:
            work.jobs.add(job)
            work.events.append(event)
            work.commit()
    with uow(read_only=True) as work:
        assert [e.sequence for e in work.log.read_tenant("acme", 0, 6, 10)] == [1, 3, 4, 6]
        assert [e.sequence for e in work.log.read_tenant("acme", 1, 4, 10)] == [3, 4]
        assert [e.sequence for e in work.log.read_tenant("acme", 0, 6, 2)] == [1, 3]
        assert [e.sequence for e in work.log.read_tenant("globex", 2, 6, 10)] == [5]
        assert work.log.read_tenant("initech", 0, 6, 10) == []


class TestSqliteWriters:
    """One process's SQLite writers take turns on a lock of their own (SQLite's busy handler
    polls, and could starve a writer for its whole timeout)."""

    def test_a_writer_waits_its_turn_and_the_turn_passes_on(
        self, engine_for: Callable[[str], Engine], clock: FakeClock
    ) -> None:
        uow = SqlAlchemyUnitOfWorkFactory(engine_for("sqlite"))
        first_in, order = threading.Event(), []

        def second() -> None:
            first_in.wait()
            with uow() as work:
                order.append("second")
                job, event = created(clock)
                work.jobs.add(job)
                work.events.append(event)
                work.commit()

        waiting = threading.Thread(target=second)
        waiting.start()
        with uow() as work:
            first_in.set()
            waiting.join(timeout=0.3)
            assert waiting.is_alive()  # the second writer waits for this one
            order.append("first")
            job, event = created(clock)
            work.jobs.add(job)
            work.events.append(event)
            work.commit()
        waiting.join(timeout=10)
        assert order == ["first", "second"]
        with uow(read_only=True) as work:
            assert [e.sequence for e in work.log.read_after(0, 10)] == [1, 2]

    def test_a_writer_that_cannot_start_gives_up_its_turn(
        self, engine_for: Callable[[str], Engine], monkeypatch: pytest.MonkeyPatch, clock: FakeClock
    ) -> None:
        engine = engine_for("sqlite")
        uow = SqlAlchemyUnitOfWorkFactory(engine)
        real_connect = engine.connect
        monkeypatch.setattr(engine, "connect", lambda: (_ for _ in ()).throw(RuntimeError("no connection")))
        with pytest.raises(RuntimeError), uow():
            pass
        monkeypatch.setattr(engine, "connect", real_connect)
        monkeypatch.setattr("modules.db.SQLITE_BUSY_TIMEOUT_S", 0.5)

        with uow() as work:  # would wait out the timeout and fail if the turn were still held
            job, event = created(clock)
            work.jobs.add(job)
            work.events.append(event)
            work.commit()


def test_a_connection_that_broke_is_discarded_not_reset(engine_for: Callable[[str], Engine]) -> None:
    """A rollback that fails (the server went away mid-statement) invalidates the connection,
    and the unit of work ends without raising: the pool neither resets it nor reuses it."""
    from sqlalchemy import exc

    uow = SqlAlchemyUnitOfWorkFactory(engine_for("sqlite"))
    invalidated: list[bool] = []
    with uow(read_only=True) as work:
        connection = work._connection  # type: ignore[attr-defined]
        invalidate = connection.invalidate

        def broken() -> None:
            raise exc.OperationalError("ROLLBACK", {}, Exception("connection socket closed"))

        def discard() -> None:
            invalidated.append(True)
            invalidate()

        connection.rollback, connection.invalidate = broken, discard
    assert invalidated == [True]
    assert connection.closed
