"""Leader locks for the scheduler: a PostgreSQL lease, a file lock, a process lock."""

from __future__ import annotations

import fcntl
import logging
import os
import socket
import uuid
from pathlib import Path
from typing import IO

from sqlalchemy import Engine, text

from core.services.unit_of_work import Fence
from modules import errors

log = logging.getLogger(__name__)


class PostgresLease:
    """Leadership as a lease row with a deadline and a fencing token (PostgreSQL).

    The holder renews it on every step; if it stalls (paused, partitioned) past
    ``ttl_s`` another replica takes it with the next token, and every promotion of the old
    holder's is refused by the fence: its transaction checks the lease is still its own.
    """

    def __init__(self, engine: Engine, name: str, *, ttl_s: float = 5.0) -> None:
        self._engine = engine.execution_options(isolation_level="AUTOCOMMIT")
        self._name = name
        self._ttl_s = ttl_s
        self._holder = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.token: int | None = None

    def try_acquire(self) -> bool:
        """Take or renew the lease; True while this holder has it."""
        with errors.translated(), self._engine.connect() as connection:
            token = connection.execute(
                _TAKE_LEASE,
                {"name": self._name, "holder": self._holder, "ttl": self._ttl_s},
            ).scalar()
        self.token = None if token is None else int(token)
        return self.token is not None

    def fence(self) -> Fence | None:
        """The check each promotion runs inside its transaction."""
        if self.token is None:
            return None
        name, token = self._name, self.token
        return lambda uow: uow.leases.holds(name, token)

    def release(self) -> None:
        """Let the lease lapse at once, so another replica takes over on its next step."""
        with errors.translated(), self._engine.connect() as connection:
            connection.execute(_DROP_LEASE, {"name": self._name, "holder": self._holder})
        self.token = None


# Take the lease if it is free or expired (a new token), or renew it if it is ours (same token).
_TAKE_LEASE = text(
    """
    INSERT INTO leader_leases (name, holder, token, expires_at)
    VALUES (:name, :holder, 1, now() + make_interval(secs => :ttl))
    ON CONFLICT (name) DO UPDATE SET
        token = CASE WHEN leader_leases.holder = EXCLUDED.holder AND leader_leases.expires_at > now()
                     THEN leader_leases.token ELSE leader_leases.token + 1 END,
        holder = EXCLUDED.holder,
        expires_at = EXCLUDED.expires_at
    WHERE leader_leases.holder = EXCLUDED.holder OR leader_leases.expires_at <= now()
    RETURNING token
    """
)
_DROP_LEASE = text("UPDATE leader_leases SET expires_at = now() WHERE name = :name AND holder = :holder")


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

    def fence(self) -> None:
        """No fence: one process holds the lock, the others wait on it."""
        return None

    def release(self) -> None:
        """Unlock."""
        if self._file is not None:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def leader_lock(engine: Engine) -> PostgresLease | FileLock:
    """The scheduler lock that fits the engine's database."""
    if engine.dialect.name == "postgresql":
        return PostgresLease(engine, "scheduler")
    database = engine.url.database or ""
    if not database or database == ":memory:":
        raise ValueError("a scheduler on SQLite needs a database file")
    return FileLock(Path(database + ".scheduler.lock"))
