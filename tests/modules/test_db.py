"""Engines, migrations, the migrate command and driver error translation."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.exc import IntegrityError, InternalError, OperationalError

from core.common.errors import ConcurrencyError, ConflictError, StorageUnavailableError
from core.services.tasks.types import TaskFilters
from modules import db, errors
from modules.db import SqlAlchemyUnitOfWorkFactory
from server.__main__ import main
from tests.conftest import SQL_BACKENDS, reset_postgres

TABLES = {"jobs", "job_runs", "tasks", "events", "event_counter", "alembic_version"}


def test_migrate_command_creates_the_schema_on_a_new_sqlite_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sub" / "jobtask.db"
    assert main(["migrate", "--database-url", f"sqlite:///{path}"]) == 0
    assert "migrated sqlite:///" in capsys.readouterr().out
    engine = db.make_engine(f"sqlite:///{path}")
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as connection:
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    engine.dispose()


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_migrations_go_down_and_up_again(backend: str, engine_for: Callable[[str], Engine]) -> None:
    engine = engine_for(backend)
    db.downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    db.migrate(engine)
    assert set(inspect(engine).get_table_names()) >= TABLES
    with engine.connect() as connection:
        assert connection.execute(text("SELECT last_sequence FROM event_counter WHERE id = 1")).scalar() == 0


def test_unsupported_urls_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported database URL"):
        db.make_engine("mysql://root@localhost/x")


def test_a_bare_postgresql_url_uses_psycopg() -> None:
    engine = db.make_engine("postgresql://u@127.0.0.1:1/x")
    assert engine.url.drivername == "postgresql+psycopg"
    engine.dispose()


class _Orig(Exception):
    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class TestTranslated:
    def test_sqlite_unique_wording_maps_to_the_constraint(self) -> None:
        orig = _Orig("UNIQUE constraint failed: jobs.tenant, jobs.owner, jobs.request_id")
        with (
            pytest.raises(ConflictError) as raised,
            errors.translated({"jobs.tenant, jobs.owner, jobs.request_id": "uq"}),
        ):
            raise IntegrityError("INSERT", {}, orig)
        assert raised.value.constraint == "uq"

    def test_names_in_the_message_and_unknown_ones(self) -> None:
        with pytest.raises(ConflictError) as raised, errors.translated():
            raise IntegrityError("INSERT", {}, _Orig('violates "fk_tasks_parent_id_tasks"'))
        assert raised.value.constraint == "fk_tasks_parent_id_tasks"
        with pytest.raises(ConflictError) as unknown, errors.translated():
            raise IntegrityError("INSERT", {}, _Orig("something"))
        assert unknown.value.constraint == "unknown"

    @pytest.mark.parametrize(
        ("orig", "expected"),
        [
            (_Orig("deadlock detected", "40P01"), ConcurrencyError),
            (_Orig("could not serialize", "40001"), ConcurrencyError),
            (_Orig("database is locked"), ConcurrencyError),
            (_Orig("connection refused", "08006"), StorageUnavailableError),
            (_Orig("no such host"), StorageUnavailableError),
        ],
    )
    def test_operational_errors(self, orig: _Orig, expected: type[Exception]) -> None:
        with pytest.raises(expected), errors.translated():
            raise OperationalError("SELECT", {}, orig)

    @pytest.mark.parametrize(
        ("orig", "expected"),
        [
            (_Orig("canceling statement due to statement timeout", "57014"), StorageUnavailableError),
            (_Orig("canceling statement due to lock timeout", "55P03"), StorageUnavailableError),
            (_Orig("terminating connection due to administrator command", "57P01"), StorageUnavailableError),
        ],
    )
    def test_timeouts_and_shutdowns_are_unavailable(self, orig: _Orig, expected: type[Exception]) -> None:
        with pytest.raises(expected), errors.translated():
            raise OperationalError("SELECT", {}, orig)

    def test_an_idle_in_transaction_timeout_is_unavailable(self) -> None:
        with pytest.raises(StorageUnavailableError), errors.translated():
            raise InternalError("SELECT", {}, _Orig("idle-in-transaction timeout", "25P03"))
        with pytest.raises(ConcurrencyError), errors.translated():
            raise InternalError("SELECT", {}, _Orig("could not serialize", "40001"))
        with pytest.raises(InternalError), errors.translated():
            raise InternalError("SELECT", {}, _Orig("something else", "XX000"))

    def test_other_operational_errors_pass_through(self) -> None:
        with pytest.raises(OperationalError), errors.translated():
            raise OperationalError("SELECT", {}, _Orig("disk full", "53100"))


@pytest.mark.postgres
def test_replicas_migrating_a_new_database_at_once_all_succeed(postgres_engine: Engine) -> None:
    """Each round drops the schema, then four migrators start together; all must succeed."""
    url = postgres_engine.url.render_as_string(hide_password=False)
    reset_postgres(postgres_engine)
    for _ in range(5):
        db.downgrade(postgres_engine, "base")
        engines = [db.make_engine(url, pool_size=1) for _ in range(4)]
        failures = _migrate_together(engines)
        for engine in engines:
            engine.dispose()
        assert failures == []
    with postgres_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM alembic_version").scalar() == 1


def _migrate_together(engines: list[Engine]) -> list[BaseException]:
    """Migrate every engine's database from its own thread, all released at once."""
    barrier = threading.Barrier(len(engines))
    failures: list[BaseException] = []

    def migrate(engine: Engine) -> None:
        try:
            barrier.wait(timeout=10)
            db.migrate(engine)
        except BaseException as exc:  # pragma: no cover - reported by the caller
            failures.append(exc)

    threads = [threading.Thread(target=migrate, args=(engine,)) for engine in engines]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


@pytest.mark.postgres
def test_a_statement_or_lock_wait_past_its_timeout_is_unavailable(postgres_engine: Engine) -> None:
    url = postgres_engine.url.render_as_string(hide_password=False)
    engine = db.make_engine(url, timeouts=db.Timeouts(statement_s=0.2, lock_s=0.2))
    try:
        with pytest.raises(StorageUnavailableError), errors.translated(), engine.connect() as connection:
            connection.exec_driver_sql("SELECT pg_sleep(2)")
        with engine.connect() as holder, engine.connect() as waiter:
            holder.exec_driver_sql("SELECT * FROM event_counter WHERE id = 1 FOR UPDATE")
            with pytest.raises(StorageUnavailableError), errors.translated():
                waiter.exec_driver_sql("UPDATE event_counter SET last_sequence = last_sequence WHERE id = 1")
            holder.rollback()
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", SQL_BACKENDS, indirect=True)
def test_the_owners_above_of_existing_subtasks_are_filled_in(
    backend: str, engine_for: Callable[[str], Engine]
) -> None:
    engine = engine_for(backend)
    db.downgrade(engine, "0005")
    # A child may sort before its parent (ids of two processes' clocks): the tree is walked.
    ids = [uuid.UUID(int=n) for n in (5, 4, 6, 1)]
    rows = [(ids[0], None, "ann"), (ids[1], ids[0], "bob"), (ids[2], ids[1], "cy"), (ids[3], None, "dee")]
    with engine.begin() as connection:
        for task_id, parent_id, owner in rows:
            connection.execute(
                text(
                    "INSERT INTO tasks (id, tenant, title, description, status, priority, owner, parent_id,"
                    " labels, created_at, updated_at, version) VALUES (:id, 'acme', 't', '', 'OPEN',"
                    " 'MEDIUM', :owner, :parent, '{}', :at, :at, 1)"
                ),
                {
                    "id": task_id if backend == "postgresql" else task_id.hex,
                    "parent": parent_id if backend == "postgresql" or parent_id is None else parent_id.hex,
                    "owner": owner,
                    "at": datetime(2030, 1, 1, tzinfo=UTC if backend == "postgresql" else None),
                },
            )
    db.migrate(engine)
    uow = SqlAlchemyUnitOfWorkFactory(engine)
    with uow(read_only=True) as work:
        found = [work.tasks.get("acme", task_id) for task_id in ids]
    assert [t.owners_above if t else None for t in found] == [(), ("ann",), ("ann", "bob"), ()]
    with engine.connect() as connection:
        pairs = connection.execute(text("SELECT reader FROM task_readers ORDER BY reader")).scalars().all()
    assert pairs == ["ann", "ann", "bob"]
    listed = SqlAlchemyUnitOfWorkFactory(engine)
    with listed(read_only=True) as work:
        mine = work.tasks.list("acme", TaskFilters(), reader="ann", after=None, limit=10)
    assert [t.id for t in mine] == sorted([ids[0], ids[1], ids[2]])
