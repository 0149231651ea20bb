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
        if error.connection_invalidated or sqlstate is None or sqlstate.startswith("08"):
            raise StorageUnavailableError(message) from error
        raise
    except exc.DBAPIError as error:
        if getattr(error.orig, "sqlstate", None) in _RETRYABLE_SQLSTATE:
            raise ConcurrencyError(str(error.orig)) from error
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
