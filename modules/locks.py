"""Leader locks for the scheduler: a PostgreSQL advisory lock, a file lock, a process lock."""

from __future__ import annotations

import fcntl
import logging
import os
import threading
from pathlib import Path
from typing import IO

from sqlalchemy import Connection, Engine, func, select

log = logging.getLogger(__name__)

SCHEDULER_LOCK_KEY = 0x6A6F627461736B  # "jobtask"


class PostgresAdvisoryLock:
    """A session-level advisory lock held on a connection of its own while leading."""

    def __init__(self, engine: Engine, key: int = SCHEDULER_LOCK_KEY) -> None:
        self._engine = engine
        self._key = key
        self._connection: Connection | None = None

    def try_acquire(self) -> bool:
        """True while this holder has the lock; the lock dies with its connection."""
        if self._connection is not None:
            try:
                self._connection.exec_driver_sql("SELECT 1")
                return True
            except Exception:
                log.warning("scheduler lock connection lost", exc_info=True)
                self._discard()
        connection = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            acquired = bool(connection.execute(select(func.pg_try_advisory_lock(self._key))).scalar())
        except Exception:
            connection.close()
            raise
        if acquired:
            self._connection = connection
        else:
            connection.close()
        return acquired

    def release(self) -> None:
        """Unlock and return the connection."""
        if self._connection is not None:
            try:
                self._connection.execute(select(func.pg_advisory_unlock(self._key)))
            finally:
                self._discard()

    def _discard(self) -> None:
        if self._connection is not None:
            self._connection.invalidate()
            self._connection.close()
            self._connection = None


class FileLock:
    """An exclusive flock on a file: leadership among processes sharing a SQLite database."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._file: IO[bytes] | None = None

    def try_acquire(self) -> bool:
        """True while this holder has the lock."""
        if self._file is not None:
            return True
        self._path.parent.mkdir(parents=True, exist_ok=True)
        handle = self._path.open("ab")
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.truncate(0)
        handle.write(str(os.getpid()).encode())
        handle.flush()
        self._file = handle
        return True

    def release(self) -> None:
        """Unlock."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


class ProcessLock:
    """Leadership among schedulers of one process (the in-memory store)."""

    _held: dict[str, object] = {}
    _guard = threading.Lock()

    def __init__(self, name: str = "scheduler") -> None:
        self._name = name

    def try_acquire(self) -> bool:
        """True while this holder has the lock."""
        with self._guard:
            holder = self._held.setdefault(self._name, self)
            return holder is self

    def release(self) -> None:
        """Unlock."""
        with self._guard:
            if self._held.get(self._name) is self:
                del self._held[self._name]


def leader_lock(engine: Engine) -> PostgresAdvisoryLock | FileLock:
    """The scheduler lock that fits the engine's database."""
    if engine.dialect.name == "postgresql":
        return PostgresAdvisoryLock(engine)
    database = engine.url.database or ""
    if not database or database == ":memory:":
        raise ValueError("a scheduler on SQLite needs a database file")
    return FileLock(Path(database + ".scheduler.lock"))
