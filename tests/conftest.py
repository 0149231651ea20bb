"""Fixtures shared by every test: clocks, actors, storage backends, the bus."""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from core.common.actor import Actor
from core.common.clock import FakeClock
from core.messaging.bus import MessageBus
from core.messaging.events import Event
from core.services.unit_of_work import UnitOfWorkFactory
from modules import db
from modules.db import SqlAlchemyUnitOfWorkFactory
from modules.memory import InMemoryUnitOfWorkFactory

POSTGRES_URL = os.environ.get(
    "JOBTASK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# CI sets this: there an unreachable PostgreSQL is a failure, not a skip.
POSTGRES_REQUIRED = os.environ.get("JOBTASK_REQUIRE_POSTGRES") == "1"
TABLES = ("job_runs", "tasks", "jobs", "events", "subscriber_positions")

BACKENDS = ["memory", "sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
SQL_BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture
def clock() -> FakeClock:
    """A clock at 2030-01-01T00:00Z that moves only when told."""
    return FakeClock(datetime(2030, 1, 1, tzinfo=UTC))


ActorFactory = Callable[..., Actor]


@pytest.fixture
def make_actor() -> ActorFactory:
    """Build actors: make_actor("member", id="ann", tenant="acme")."""

    def build(*roles: str, id: str | None = None, tenant: str = "acme") -> Actor:
        return Actor(
            id=id or f"{'-'.join(roles) or 'nobody'}-{uuid.uuid4().hex[:6]}",
            tenant=tenant,
            roles=frozenset(roles),
        )

    return build


@pytest.fixture
def bus() -> MessageBus:
    """A fresh message bus."""
    return MessageBus()


@pytest.fixture
def delivered(bus: MessageBus) -> list[Event]:
    """Every event the bus delivers, in order."""
    seen: list[Event] = []
    bus.subscribe("*", seen.append)
    return seen


# -- storage backends --------------------------------------------------------------------


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies."""
    path = tmp_path_factory.mktemp("template") / "jobtask.db"
    engine = db.make_engine(f"sqlite:///{path}")
    db.migrate(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_engine() -> Iterator[Engine]:
    """An engine on a database of this test session's own, migrated; dropped at the end."""
    admin_url = make_url(POSTGRES_URL)
    name = f"jobtask_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        if POSTGRES_REQUIRED:
            raise
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        pytest.skip(f"PostgreSQL not reachable at {admin_url.render_as_string(hide_password=True)}: {reason}")
    engine = db.make_engine(admin_url.set(database=name).render_as_string(hide_password=False))
    db.migrate(engine)
    yield engine
    engine.dispose()
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def reset_postgres(engine: Engine) -> None:
    """Empty every table and restart the event sequence."""
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {', '.join(TABLES)} CASCADE"))
        connection.execute(text("UPDATE event_counter SET last_sequence = 0"))


@pytest.fixture
def engine_for(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[[str], Engine]]:
    """engine_for("sqlite" | "postgresql"): a migrated, empty database for this test."""
    made: list[Engine] = []

    def build(backend: str) -> Engine:
        if backend == "postgresql":
            engine: Engine = request.getfixturevalue("postgres_engine")
            reset_postgres(engine)
            return engine
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path / f"jobtask-{len(made)}.db"
        shutil.copyfile(template, path)
        engine = db.make_engine(f"sqlite:///{path}")
        made.append(engine)
        return engine

    yield build
    for engine in made:
        engine.dispose()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    """The name of the storage backend under test."""
    return str(request.param)


@pytest.fixture
def uow(backend: str, engine_for: Callable[[str], Engine], bus: MessageBus) -> UnitOfWorkFactory:
    """A unit-of-work factory on the backend under test, publishing to ``bus``."""
    if backend == "memory":
        return InMemoryUnitOfWorkFactory(publish=bus.publish)
    return SqlAlchemyUnitOfWorkFactory(engine_for(backend), publish=bus.publish)


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands under test configure the root logger; put it back after each test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    alembic_level = logging.getLogger("alembic").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("alembic").setLevel(alembic_level)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Skips summarized by reason, one line each (not one per test)."""
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        counts[reason] = counts.get(reason, 0) + 1
    for reason, count in sorted(counts.items()):
        terminalreporter.write_line(f"SKIPPED {count} tests: {reason}")
