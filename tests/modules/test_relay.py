"""The LISTEN/NOTIFY relay: a commit of events anywhere wakes listeners; a rollback does not."""

from __future__ import annotations

import threading
from collections.abc import Callable

import pytest
from sqlalchemy import Engine

from core.common.clock import FakeClock
from modules.db import SqlAlchemyUnitOfWorkFactory
from modules.event_store.relay import Notice, PostgresEventRelay
from tests.modules.test_unit_of_work import created


@pytest.mark.postgres
def test_listeners_hear_commits_and_not_rollbacks(
    engine_for: Callable[[str], Engine], clock: FakeClock
) -> None:
    engine = engine_for("postgresql")
    heard = threading.Semaphore(0)
    relay = PostgresEventRelay(engine, [lambda _: heard.release()])
    relay.start()
    try:
        assert relay.listening.wait(10)
        assert heard.acquire(timeout=5)  # the catch-up wake-up on (re)connect
        uow = SqlAlchemyUnitOfWorkFactory(engine)
        job, event = created(clock)
        with uow() as work:
            work.jobs.add(job)
            work.events.append(event)
            work.log.store(work.events.pending)
            work.rollback()
        assert not heard.acquire(timeout=0.5)
        with uow() as work:
            work.jobs.add(job)
            work.events.append(event)
            work.commit()
        assert heard.acquire(timeout=5)
    finally:
        relay.stop()


@pytest.mark.postgres
def test_the_relay_reconnects(engine_for: Callable[[str], Engine]) -> None:
    engine = engine_for("postgresql")
    heard = threading.Semaphore(0)
    relay = PostgresEventRelay(engine, [lambda _: heard.release()], reconnect_delay=0.05)
    relay.start()
    try:
        assert heard.acquire(timeout=5)
        with engine.connect() as connection:
            connection.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE query LIKE 'LISTEN%%' AND datname = current_database()"
            )
            connection.commit()
        assert heard.acquire(timeout=10)  # reconnected, and read the log again
    finally:
        relay.stop()


@pytest.mark.postgres
def test_the_relay_passes_on_each_commits_notice(
    engine_for: Callable[[str], Engine], clock: FakeClock
) -> None:
    engine = engine_for("postgresql")
    notices: list[Notice] = []
    heard = threading.Semaphore(0)

    def hear(notice: Notice) -> None:
        notices.append(notice)
        heard.release()

    relay = PostgresEventRelay(engine, [hear])
    relay.start()
    try:
        assert relay.listening.wait(10) and heard.acquire(timeout=5)
        uow = SqlAlchemyUnitOfWorkFactory(engine, notice=lambda events: f"{len(events)} events")
        for label in ("first", "second"):
            job, event = created(clock)
            with uow() as work:
                work.jobs.add(job)
                work.events.append(event)
                if label == "second":
                    work.log.store(work.events.pending)  # the statement-by-statement path
                    work._commit()  # type: ignore[attr-defined]
                else:
                    work.commit()
            assert heard.acquire(timeout=5)
        too_long = SqlAlchemyUnitOfWorkFactory(engine, notice=lambda _: "x" * 8000)
        job, event = created(clock)
        with too_long() as work:
            work.jobs.add(job)
            work.events.append(event)
            work.commit()
        assert heard.acquire(timeout=5)
    finally:
        relay.stop()
    assert notices == [None, "1 events", "1 events", ""]
