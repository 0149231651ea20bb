"""Transaction: how a unit of work's statements reach the database, in as few round trips as
it can.

On PostgreSQL a writing unit of work runs its connection in autocommit and opens the
database transaction itself, at its first write: reads before it cost no BEGIN. Inserts
are held back until a statement needs them (they are flushed first) or the commit, which
sends them with the events and COMMIT in one message (``SqlAlchemyEventStore.store_and_commit``):
creating a job is one round trip. Reads ahead of the first write see committed data, as
every statement does under READ COMMITTED; the version check of each write guards the rest.

Elsewhere (SQLite; PostgreSQL reads) statements simply run on the connection as they come.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import JSON, Connection, Table, exc, insert
from sqlalchemy.engine import CursorResult

from modules import errors

if TYPE_CHECKING:
    import psycopg


class Transaction:
    """The statements of one unit of work on one connection."""

    def __init__(
        self, connection: Connection, *, deferring: bool = False, local_settings: str | None = None
    ) -> None:
        self.connection = connection
        self.dialect = connection.dialect.name
        self._deferring = deferring
        self.begun = not deferring
        # e.g. "SET LOCAL statement_timeout = 800": run right after BEGIN.
        self.local_settings = local_settings
        self.pending: list[tuple[Table, dict[str, Any]]] = []

    def read(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        """Run a query, after any held-back insert it might need to see."""
        if self.pending:
            self._flush()
        return self.connection.execute(statement, parameters)

    def write(self, statement: Any, parameters: Any = None) -> CursorResult[Any]:
        """Run a change whose result (a row count) is needed now, inside the transaction.

        Held-back inserts go first when the change could meet them: one into the same table,
        or any before a DELETE (whose cascade could reach them)."""
        self._begin()
        if self.pending:
            target = getattr(statement, "table", None)
            if getattr(statement, "is_delete", False) or any(t is target for t, _ in self.pending):
                self._flush()
        return self.connection.execute(statement, parameters)

    def driver_read(self, sql: str, parameters: tuple[Any, ...]) -> dict[str, Any] | None:
        """PostgreSQL: one row of a query run on the driver itself, as column -> value (for the
        hottest reads; the session's time zone is UTC, so times come back as SQLAlchemy's do)."""
        from psycopg.rows import dict_row

        if self.pending:
            self._flush()
        raw = self.driver()
        with driver_errors(self.connection, sql), raw.cursor(row_factory=dict_row) as cursor:
            cursor.execute(sql, parameters)
            return cursor.fetchone()

    def driver(self) -> psycopg.Connection[Any]:
        """The psycopg connection under this transaction (PostgreSQL)."""
        import psycopg

        raw = self.connection.connection.driver_connection
        assert isinstance(raw, psycopg.Connection)
        return raw

    def insert(self, table: Table, values: dict[str, Any]) -> None:
        """Insert a row, now or (when deferring) with the commit."""
        if self._deferring:
            self.pending.append((table, values))
        else:
            self.connection.execute(insert(table), values)

    def _begin(self) -> None:
        if not self.begun:
            self.connection.exec_driver_sql("BEGIN")
            if self.local_settings:
                self.connection.exec_driver_sql(self.local_settings)
            self.begun = True

    def opening_sql(self) -> list[str]:
        """What a single commit message must start with when no statement began the transaction."""
        if self.begun:
            return []
        return ["BEGIN", self.local_settings] if self.local_settings else ["BEGIN"]

    def _flush(self) -> None:
        self._begin()
        held, self.pending = self.pending, []
        for table, values in held:
            self.connection.execute(insert(table), values)


@contextlib.contextmanager
def driver_errors(connection: Connection, statement: str) -> Iterator[None]:
    """Translate the errors of a statement sent on the driver itself, as errors.translated
    does for SQLAlchemy's (a broken connection is invalidated first)."""
    import psycopg

    try:
        yield
    except psycopg.Error as error:
        raw = connection.connection.driver_connection
        broken = bool(getattr(raw, "closed", False) or getattr(raw, "broken", False))
        if broken:
            connection.invalidate(error)
        with errors.translated():
            raise exc.DBAPIError.instance(
                statement, None, error, psycopg.Error, connection_invalidated=broken
            ) from error
        raise  # pragma: no cover - translated() re-raises every DBAPIError


class TransactionalRepository:
    """Base of the repositories: statements go through the unit of work's Transaction, and
    driver errors are translated (``unique_by_columns`` names SQLite's unique constraints,
    which SQLite reports by their columns)."""

    unique_by_columns: ClassVar[dict[str, str]] = {}

    def __init__(self, transaction: Transaction) -> None:
        self._tx = transaction

    def _execute(self, statement: Any, parameters: Any = None) -> Any:
        with errors.translated(self.unique_by_columns):
            return self._tx.read(statement, parameters)

    def _write(self, statement: Any, parameters: Any = None) -> Any:
        with errors.translated(self.unique_by_columns):
            return self._tx.write(statement, parameters)

    def _insert(self, table: Table, values: dict[str, Any]) -> None:
        with errors.translated(self.unique_by_columns):
            self._tx.insert(table, values)


def insert_sql(table: Table, values: Mapping[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    """An INSERT of one row as psycopg-style SQL with named parameters prefixed by ``key``,
    for a message bound client-side; JSON columns are wrapped for the driver."""
    from psycopg.types.json import Jsonb

    json_columns = _json_columns(table)
    names = list(values)
    placeholders = ", ".join(f"%({key}_{name})s" for name in names)
    parameters = {
        f"{key}_{name}": Jsonb(value) if name in json_columns and value is not None else value
        for name, value in values.items()
    }
    return f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({placeholders})", parameters


_JSON_COLUMNS: dict[str, frozenset[str]] = {}


def _json_columns(table: Table) -> frozenset[str]:
    found = _JSON_COLUMNS.get(table.name)
    if found is None:
        found = frozenset(c.name for c in table.columns if isinstance(c.type, JSON))
        _JSON_COLUMNS[table.name] = found
    return found
