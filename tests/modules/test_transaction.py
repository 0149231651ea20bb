"""How a unit of work's statements reach the database: on PostgreSQL the transaction opens at
the first write and inserts travel with the commit; everywhere a unit of work reads its own
writes."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg.pq import TransactionStatus
from sqlalchemy import Engine
from sqlalchemy.exc import ProgrammingError

from core.common.errors import StorageUnavailableError
from core.common.ids import new_id
from core.services.jobs.types import Job, JobRun, JobStatus, RunStatus
from modules import db

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def run_of(owner: Job) -> JobRun:
    return JobRun(id=new_id(), job_id=owner.id, tenant="acme", attempt=1, started_by="w", started_at=NOW)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_unit_of_work_reads_and_changes_what_it_inserted(
    backend: str, engine_for: Callable[[str], Engine], new_job: Callable[..., Job]
) -> None:
    uow = db.SqlAlchemyUnitOfWorkFactory(engine_for(backend))
    first = new_job()
    with uow() as work:
        work.jobs.add(first)
        assert work.jobs.get("acme", first.id) == first
        moved = dataclasses.replace(first, status=JobStatus.RUNNING, version=2)
        work.jobs.save(moved, expected_version=1)
        work.jobs.add_run(run_of(first))
        work.commit()
    with uow(read_only=True) as work:
        assert work.jobs.get("acme", first.id) == moved
        assert work.jobs.open_run(first.id) is not None
    doomed = new_job()
    with uow() as work:
        work.jobs.add(doomed)
        work.jobs.add_run(run_of(doomed))
        work.jobs.delete(doomed)  # the held-back rows go first, then the cascade removes them
        work.commit()
    with uow(read_only=True) as work:
        assert work.jobs.get("acme", doomed.id) is None
        assert work.jobs.open_run(doomed.id) is None


@pytest.mark.postgres
def test_on_postgresql_the_transaction_opens_at_the_first_write_and_inserts_wait_for_the_commit(
    engine_for: Callable[[str], Engine], new_job: Callable[..., Job]
) -> None:
    uow = db.SqlAlchemyUnitOfWorkFactory(engine_for("postgresql"))
    existing = new_job()
    with uow() as work:
        work.jobs.add(existing)
        work.commit()

    with uow() as work:
        raw = work.jobs._tx.connection.connection.driver_connection  # type: ignore[attr-defined]
        assert isinstance(raw, psycopg.Connection)
        assert work.jobs.get("acme", existing.id) == existing
        added = new_job()
        work.jobs.add(added)
        work.jobs.add_run(run_of(existing))
        # A read and two inserts, and still no transaction on the server: the inserts are held.
        assert raw.pgconn.transaction_status == TransactionStatus.IDLE
        work.jobs.save(dataclasses.replace(existing, name="m", version=2), expected_version=1)
        assert raw.pgconn.transaction_status == TransactionStatus.INTRANS
        work.commit()
        assert raw.pgconn.transaction_status == TransactionStatus.IDLE
    with uow(read_only=True) as work:
        assert work.jobs.get("acme", added.id) == added
        assert work.jobs.get("acme", existing.id).name == "m"  # type: ignore[union-attr]
        assert work.jobs.open_run(existing.id).status is RunStatus.RUNNING  # type: ignore[union-attr]


@pytest.mark.postgres
def test_on_postgresql_a_unit_of_work_that_fails_leaves_nothing(
    engine_for: Callable[[str], Engine], new_job: Callable[..., Job]
) -> None:
    uow = db.SqlAlchemyUnitOfWorkFactory(engine_for("postgresql"))
    kept = new_job()
    with pytest.raises(RuntimeError), uow() as work:
        work.jobs.add(kept)
        work.jobs.save(dataclasses.replace(kept, name="m", version=2), expected_version=1)
        raise RuntimeError("the service gave up before its commit")
    with uow(read_only=True) as work:
        assert work.jobs.get("acme", kept.id) is None


@pytest.mark.postgres
def test_a_driver_read_translates_driver_errors(postgres_engine: Engine) -> None:
    url = postgres_engine.url.render_as_string(hide_password=False)
    engine = db.make_engine(url, timeouts=db.Timeouts(statement_s=0.2))
    uow = db.SqlAlchemyUnitOfWorkFactory(engine)
    try:
        with uow(read_only=True) as work, pytest.raises(StorageUnavailableError):
            work.jobs._tx.driver_read("SELECT pg_sleep(2), %s", (1,))  # type: ignore[attr-defined]
        with uow(read_only=True) as work, pytest.raises(ProgrammingError):
            work.jobs._tx.driver_read("SELEC nonsense %s", (1,))  # type: ignore[attr-defined]
    finally:
        engine.dispose()
