"""Engine, migrations and SqlAlchemyUnitOfWork: jobs, tasks and events in one transaction."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, exc
from sqlalchemy.engine import make_url

from core.common import context
from core.common.errors import ConcurrencyError
from core.messaging.events import Event
from core.services.unit_of_work import BaseUnitOfWork, Notice, Publisher
from modules import errors
from modules.transaction import Transaction

if TYPE_CHECKING:
    from modules.event_store.repository import SqlAlchemyEventStore

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30.0
# SQLite has one writer at a time, and its busy handler polls: a writer that keeps missing
# the moment the lock is free can wait out the whole timeout while others commit. The
# units of work of one process queue on this lock instead, so the lock passes from one
# writer to the next in turn.
_SQLITE_WRITERS: weakref.WeakKeyDictionary[Engine, threading.Lock] = weakref.WeakKeyDictionary()
DEFAULT_STATEMENT_TIMEOUT_S = 15.0
MIGRATION_LOCK_KEY = 0x6A6F62746D6967  # "jobtmig": migrations (the scheduler has its own key)


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """Bounds on every wait in the database, so no stall is unbounded (PostgreSQL).

    ``statement_s``: longest a statement may run; ``lock_s``: longest a statement waits for
    a row another transaction holds; ``idle_in_transaction_s``: longest a transaction may sit
    waiting for its client (a paused or partitioned replica) before the server ends it and
    releases its locks; ``connect_s``: to open a connection. Dead peers are found by TCP
    keepalives and ``tcp_user_timeout`` within about twice ``connect_s``.
    """

    statement_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_s: float = 2.0
    idle_in_transaction_s: float = 5.0
    connect_s: float = 5.0

    def postgres_connect_args(self) -> dict[str, Any]:
        """libpq connection parameters that apply these bounds to every session."""
        options = " ".join(
            f"-c {name}={max(1, int(seconds * 1000))}"
            for name, seconds in (
                ("statement_timeout", self.statement_s),
                ("lock_timeout", self.lock_s),
                ("idle_in_transaction_session_timeout", self.idle_in_transaction_s),
            )
        )
        keepalive_s = max(1, int(self.connect_s))
        return {
            "connect_timeout": max(1, int(self.connect_s)),
            "keepalives": 1,
            "keepalives_idle": keepalive_s,
            "keepalives_interval": max(1, keepalive_s // 3),
            "keepalives_count": 3,
            "tcp_user_timeout": keepalive_s * 2000,
            # UTC, so times read past SQLAlchemy come back as its UTCDateTime reads them.
            "options": options + " -c timezone=UTC",
        }


def make_engine(
    url: str, *, pool_size: int = 10, echo: bool = False, timeouts: Timeouts | None = None
) -> Engine:
    """An engine for ``url``: SQLite (a file, WAL, busy timeout) or PostgreSQL via psycopg 3."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_S},
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        _SQLITE_WRITERS[engine] = threading.Lock()
        if database and database != ":memory:":
            # WAL is a property of the file: set it once here, not on every new connection,
            # where the switch can fail at once with "database is locked" under load.
            raw = engine.raw_connection()
            try:
                raw.cursor().execute("PRAGMA journal_mode=WAL")
            finally:
                raw.close()
        return engine
    if parsed.get_backend_name() == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(
            # No pre-ping: it costs a round trip per unit of work. A connection found dead is
            # invalidated on use (the call answers UNAVAILABLE) and replaced; recycling keeps
            # connections from outliving server-side timeouts.
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_recycle=1800,
            connect_args=(timeouts or Timeouts()).postgres_connect_args(),
        )
    raise ValueError(f"unsupported database URL {parsed.render_as_string(hide_password=True)}")


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # Take transaction control from pysqlite: BEGIN is emitted in _sqlite_on_begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_on_begin(connection: Connection) -> None:
    # A writer takes the write lock at BEGIN: upgrading a read lock later could fail at once
    # with "database is locked" instead of waiting for the busy timeout. Readers run in
    # autocommit and emit no BEGIN.
    if connection.get_execution_options().get("jobtask_write", True):
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine, revision: str = "head") -> None:
    """Bring the schema up to ``revision`` with Alembic."""
    _alembic(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    """Take the schema down to ``revision`` ("base" drops everything)."""
    _alembic(engine, "downgrade", revision)


def _alembic(engine: Engine, direction: str, revision: str) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Replicas starting together migrate one at a time: the others wait for this
            # transaction, then find the schema current. A migration may take long (an index
            # over a big table): the session's statement and lock timeouts do not apply.
            connection.exec_driver_sql("SET LOCAL statement_timeout = 0")
            connection.exec_driver_sql("SET LOCAL lock_timeout = 0")
            connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")
        # (SQLite: the migrating transaction holds the file's write lock from its BEGIN.)
        config.attributes["connection"] = connection
        getattr(command, direction)(config, revision)


class SqlAlchemyUnitOfWork(BaseUnitOfWork):
    """One database transaction over the job, task and event repositories.

    On PostgreSQL a write transaction of a call with a deadline nearer than the statement
    timeout gets that deadline as its own statement timeout.
    """

    def __init__(
        self,
        engine: Engine,
        *,
        publish: Publisher | None = None,
        read_only: bool = False,
        statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
        notice: Notice | None = None,
    ) -> None:
        super().__init__(publish=publish, read_only=read_only)
        self._engine = engine
        self._statement_timeout_s = statement_timeout_s
        self._notice = notice
        self._connection: Connection | None = None
        self._transaction: Transaction | None = None
        self._store: SqlAlchemyEventStore | None = None
        self._writers: threading.Lock | None = None  # this process's turn to write (SQLite)

    def _begin(self) -> None:
        from modules.event_store.repository import (
            SqlAlchemyEventStore,
            SqlAlchemyLeaseStore,
            SqlAlchemyPositionStore,
        )
        from modules.job_store.repository import SqlAlchemyJobRepository
        from modules.task_store.repository import SqlAlchemyTaskRepository

        writers = None if self.read_only else _SQLITE_WRITERS.get(self._engine)
        if writers is not None:
            if not writers.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
                raise ConcurrencyError(f"database is locked: no turn to write in {SQLITE_BUSY_TIMEOUT_S:g}s")
            self._writers = writers
        try:
            connection = self._connect()
        except BaseException:
            self._close()  # __exit__ does not run when __enter__ fails
            raise
        postgres = connection.dialect.name == "postgresql"
        local_settings = None
        if postgres and not self.read_only:
            remaining = context.time_remaining()
            if remaining is not None and remaining < self._statement_timeout_s:
                local_settings = f"SET LOCAL statement_timeout = {max(1, int(remaining * 1000))}"
        self._connection = connection
        self._transaction = Transaction(
            connection, deferring=postgres and not self.read_only, local_settings=local_settings
        )
        self.jobs = SqlAlchemyJobRepository(self._transaction)
        self.tasks = SqlAlchemyTaskRepository(self._transaction)
        self._store = self.log = SqlAlchemyEventStore(self._transaction, notice=self._notice)
        self.positions = SqlAlchemyPositionStore(self._transaction)
        self.leases = SqlAlchemyLeaseStore(self._transaction)

    def _connect(self) -> Connection:
        with errors.translated():
            connection = self._engine.connect()
            self._connection = connection
            if self.read_only:
                # Reads run in autocommit: no BEGIN/ROLLBACK round trips; each statement sees
                # committed data. (SQLite connections already autocommit unless a writer
                # begins; see _sqlite_on_begin.)
                connection.execution_options(jobtask_write=False)
            if connection.dialect.name == "postgresql":
                # Writers open the transaction themselves at their first write (Transaction).
                connection.execution_options(isolation_level="AUTOCOMMIT")
            connection.begin()
        return connection

    def _store_and_commit(self, pending: Sequence[Event]) -> list[Event]:
        assert self._connection is not None
        if self._connection.dialect.name != "postgresql":
            return super()._store_and_commit(pending)
        assert self._store is not None
        stored = self._store.store_and_commit(pending)
        # The driver's transaction has ended; this only closes SQLAlchemy's record of it.
        self._commit()
        return stored

    def _commit(self) -> None:
        assert self._connection is not None
        with errors.translated():
            self._connection.commit()

    def _rollback(self) -> None:
        if self._connection is not None:
            # On PostgreSQL the connection is in autocommit and the transaction ours: the
            # driver sends ROLLBACK only when one is open.
            try:
                self._connection.rollback()
            except exc.DBAPIError:
                # The connection broke mid-statement (its server went away): discard it, so
                # the pool does not try to reset it too (and log that failure as an error).
                self._connection.invalidate()

    def _close(self) -> None:
        try:
            if self._connection is not None:
                self._connection.close()
                self._connection = None
        finally:
            if self._writers is not None:
                self._writers.release()
                self._writers = None


class SqlAlchemyUnitOfWorkFactory:
    """Opens SqlAlchemyUnitOfWorks on one engine, delivering committed events to ``publish``."""

    def __init__(
        self,
        engine: Engine,
        *,
        publish: Publisher | None = None,
        timeouts: Timeouts | None = None,
        notice: Notice | None = None,
    ) -> None:
        self.engine = engine
        self._publish = publish
        self._statement_timeout_s = (timeouts or Timeouts()).statement_s
        self._notice = notice

    def __call__(self, *, read_only: bool = False) -> SqlAlchemyUnitOfWork:
        """A new unit of work."""
        return SqlAlchemyUnitOfWork(
            self.engine,
            publish=self._publish,
            read_only=read_only,
            statement_timeout_s=self._statement_timeout_s,
            notice=self._notice,
        )


def ping(engine: Engine) -> None:
    """Raise unless the database answers a trivial query."""
    with errors.translated(), engine.connect() as connection:
        connection.exec_driver_sql("SELECT 1").scalar()
        connection.rollback()
