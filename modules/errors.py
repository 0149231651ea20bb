"""Driver errors translated once, at the storage edge, into core's storage errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from sqlalchemy import exc

from core.common.errors import ConcurrencyError, ConflictError, StorageUnavailableError

# Constraint names come from the naming convention in modules/base.py.
_CONSTRAINT = re.compile(r"(uq_[a-z_]+|fk_[a-z_]+|pk_[a-z_]+)")
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: ([\w.]+(?:, [\w.]+)*)")
# SQLSTATEs meaning "the transaction lost a race; retry": serialization failure, deadlock.
_RETRYABLE_SQLSTATE = {"40001", "40P01"}
# SQLSTATEs meaning "the database could not serve this in time or at all": statement or lock
# timeout, a session ended by the server (idle in transaction, shutdown), too many connections.
_UNAVAILABLE_SQLSTATE = {"57014", "55P03", "25P03", "57P01", "57P02", "57P03", "53300"}


@contextlib.contextmanager
def translated(unique_by_columns: dict[str, str] | None = None) -> Iterator[None]:
    """Raise ConflictError, ConcurrencyError or StorageUnavailableError for driver errors.

    ``unique_by_columns`` maps SQLite's "table.col, table.col" wording to a constraint name,
    since SQLite does not report constraint names.
    """
    try:
        yield
    except exc.IntegrityError as error:
        raise ConflictError(_constraint_name(error, unique_by_columns or {}), str(error.orig)) from error
    except exc.OperationalError as error:
        sqlstate = getattr(error.orig, "sqlstate", None)
        message = str(error.orig)
        if sqlstate in _RETRYABLE_SQLSTATE or "database is locked" in message:
            raise ConcurrencyError(message) from error
        if (
            error.connection_invalidated
            or sqlstate is None
            or sqlstate.startswith("08")
            or sqlstate in _UNAVAILABLE_SQLSTATE
        ):
            raise StorageUnavailableError(message) from error
        raise
    except exc.DBAPIError as error:
        sqlstate = getattr(error.orig, "sqlstate", None)
        if sqlstate in _RETRYABLE_SQLSTATE:
            raise ConcurrencyError(str(error.orig)) from error
        if sqlstate in _UNAVAILABLE_SQLSTATE or error.connection_invalidated:
            raise StorageUnavailableError(str(error.orig)) from error
        raise


def _constraint_name(error: exc.IntegrityError, unique_by_columns: dict[str, str]) -> str:
    diag = getattr(error.orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    if name:
        return str(name)
    message = str(error.orig)
    sqlite = _SQLITE_UNIQUE.search(message)
    if sqlite and sqlite.group(1) in unique_by_columns:
        return unique_by_columns[sqlite.group(1)]
    found = _CONSTRAINT.search(message)
    return found.group(1) if found else "unknown"
