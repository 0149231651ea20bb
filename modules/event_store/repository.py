"""SqlAlchemyEventStore: the append-only event log, ordered by a locked counter.

Sequences come from one counter row, locked from assignment until commit, so events
become visible strictly in sequence order. On PostgreSQL the lock is taken, the events
inserted and the transaction committed in one pipelined round trip
(``store_and_commit``): the lock is held only while the server works, never while a
client process runs or is paused.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, cast

import psycopg
from sqlalchemy import Row, Table, delete, func, insert, select, update

# The payload classes register their event types when their modules are imported.
import core.services.catalog  # noqa: F401 - the event types the log decodes
from core.common.errors import StaleVersionError
from core.messaging import events
from core.messaging.events import Event
from core.services.unit_of_work import Notice
from modules import errors
from modules.event_store.models import EventCounterRow, EventRow, LeaderLeaseRow, SubscriberPositionRow
from modules.transaction import Transaction, driver_errors, insert_sql

event_rows = cast("Table", EventRow.__table__)
CHANNEL = "jobtask_events"
counter = cast("Table", EventCounterRow.__table__)
positions = cast("Table", SubscriberPositionRow.__table__)
leases = cast("Table", LeaderLeaseRow.__table__)


class SqlAlchemyEventStore:
    """Stores events inside the current transaction; reads committed ones by sequence."""

    def __init__(self, transaction: Transaction, *, notice: Notice | None = None) -> None:
        self._tx = transaction
        self._notice = notice

    def _notice_of(self, events_: Sequence[Event]) -> str:
        """The NOTIFY payload of a commit of ``events_`` (empty unless a notice is set)."""
        if self._notice is None:
            return ""
        text = self._notice(events_)
        return text if len(text.encode()) <= NOTICE_MAX_BYTES else ""

    def store(self, events_: Sequence[Event]) -> list[Event]:
        """Take the next sequences (locking the counter row until commit) and insert."""
        with errors.translated():
            taken = (
                update(counter)
                .where(counter.c.id == 1)
                .values(last_sequence=counter.c.last_sequence + len(events_))
                .returning(counter.c.last_sequence)
            )
            if self._tx.dialect == "postgresql":
                # NOTIFY in the same statement, to spend no extra round trip under the lock;
                # it is delivered to listeners when (and only if) this transaction commits.
                taken = taken.returning(func.pg_notify(CHANNEL, self._notice_of(events_)))
            last = self._tx.write(taken).scalar_one()
            first = last - len(events_) + 1
            stored = [event.with_sequence(first + offset) for offset, event in enumerate(events_)]
            self._tx.write(insert(event_rows), [event_values(event) for event in stored])
        return stored

    def store_and_commit(self, events_: Sequence[Event]) -> list[Event]:
        """PostgreSQL: send what the transaction still holds back, take the sequences, insert
        the events, notify and commit, in one message.

        The message is one simple-protocol query (parameters bound client-side, quoted by
        the driver), so the server runs it to the COMMIT without waiting for this process:
        the counter's lock is never held while a Python thread waits. When no statement
        opened the transaction yet, the message opens it too (a create is one round trip).
        """
        raw = self._tx.driver()
        body: list[str] = []
        parameters: dict[str, Any] = {}
        held, self._tx.pending = self._tx.pending, []
        for index, (table, values) in enumerate(held):
            sql, bound = insert_sql(table, values, f"i{index}")
            body.append(sql)
            parameters.update(bound)
        if events_:
            body.append(_STORE_SQL)
            parameters.update(_store_params(events_), notice=self._notice_of(events_))
        if not body and not self._tx.begun:
            return []  # nothing was written: there is no transaction to commit
        statements = [*(self._tx.opening_sql() if body else []), *body, "COMMIT"]
        last = 0
        with driver_errors(self._tx.connection, _STORE_SQL):
            cursor = psycopg.ClientCursor(raw)
            cursor.execute(";\n".join(statements), parameters)
            if events_:
                while cursor.description is None and cursor.nextset():
                    pass
                row = cursor.fetchone()
                assert row is not None
                last = int(row[0])
        first = last - len(events_) + 1
        return [event.with_sequence(first + offset) for offset, event in enumerate(events_)]

    def read_after(self, after_sequence: int, limit: int) -> list[Event]:
        """Committed events above ``after_sequence``, in sequence order."""
        statement = (
            select(event_rows)
            .where(event_rows.c.sequence > after_sequence)
            .order_by(event_rows.c.sequence)
            .limit(limit)
        )
        with errors.translated():
            return [event_from_row(row) for row in self._tx.read(statement)]

    def read_tenant(self, tenant: str, after_sequence: int, through: int, limit: int) -> list[Event]:
        """Committed events of ``tenant`` in (after_sequence, through], in order (the index on
        (tenant, sequence) serves it: a replay reads only its own tenant's rows)."""
        statement = (
            select(event_rows)
            .where(
                event_rows.c.tenant == tenant,
                event_rows.c.sequence > after_sequence,
                event_rows.c.sequence <= through,
            )
            .order_by(event_rows.c.sequence)
            .limit(limit)
        )
        with errors.translated():
            return [event_from_row(row) for row in self._tx.read(statement)]

    def bounds(self) -> tuple[int, int]:
        """(oldest sequence kept, last sequence assigned), read in one statement so both
        come from one snapshot."""
        oldest = select(func.min(event_rows.c.sequence)).scalar_subquery()
        last = select(counter.c.last_sequence).where(counter.c.id == 1).scalar_subquery()
        with errors.translated():
            row = self._tx.read(select(oldest, last)).one()
        return int(row[0] or 0), int(row[1] or 0)

    def prune(self, older_than: datetime) -> int:
        """Delete the events up to the last one that occurred before ``older_than``.

        Pruning a prefix by sequence, not every old row, keeps the log free of holes:
        occurred_at is taken before commit, so it is not strictly ordered by sequence.
        """
        horizon = select(func.max(event_rows.c.sequence)).where(event_rows.c.occurred_at < older_than)
        with errors.translated():
            through = self._tx.read(horizon).scalar()
            if through is None:
                return 0
            result = self._tx.write(delete(event_rows).where(event_rows.c.sequence <= through))
        return int(result.rowcount)


class SqlAlchemyPositionStore:
    """Durable subscribers' positions, changed in the same transaction as their reactions."""

    def __init__(self, transaction: Transaction) -> None:
        self._tx = transaction

    def get(self, name: str) -> int:
        """The last sequence ``name`` processed; 0 when it never ran."""
        with errors.translated():
            found = self._tx.read(select(positions.c.position).where(positions.c.name == name)).scalar()
        return int(found or 0)

    def advance(self, name: str, expected: int, position: int) -> None:
        """Compare-and-set the position of ``name``."""
        with errors.translated():
            moved = self._tx.write(
                update(positions)
                .where(positions.c.name == name, positions.c.position == expected)
                .values(position=position)
            ).rowcount
            if moved == 1:
                return
            current = self._tx.read(select(positions.c.position).where(positions.c.name == name)).scalar()
            if current is None and expected == 0:
                self._tx.insert(positions, {"name": name, "position": position})
                return
        raise StaleVersionError("subscriber position", name, expected, current)


# One statement takes the sequences (locking the counter row) and inserts the events in order;
# NOTIFY rides along and reaches listeners on commit, which follows in the same message. The
# events travel as one JSON document: a single literal to quote. (Literal percent signs would
# need doubling: the message is bound client-side with named parameters.)
_STORE_SQL = f"""
WITH taken AS (
    UPDATE event_counter SET last_sequence = last_sequence + %(n)s WHERE id = 1
    RETURNING last_sequence
), inserted AS (
    INSERT INTO events
        (sequence, id, type, occurred_at, tenant, actor_id, resource_id, job_id, correlation_id, payload)
    SELECT taken.last_sequence - %(n)s + e.ord, e.id, e.type, e.occurred_at, e.tenant, e.actor_id,
           e.resource_id, e.job_id, e.correlation_id, e.payload
    FROM taken, jsonb_to_recordset(%(events)s::jsonb) AS e(
        ord bigint, id uuid, type text, occurred_at timestamptz, tenant text, actor_id text,
        resource_id uuid, job_id uuid, correlation_id text, payload jsonb
    )
    RETURNING 1
)
SELECT last_sequence, (SELECT count(*) FROM inserted), pg_notify('{CHANNEL}', %(notice)s) FROM taken
"""

# PostgreSQL refuses a NOTIFY payload of 8000 bytes or more; a longer notice is dropped
# (an empty one: listeners then assume anything may have happened).
NOTICE_MAX_BYTES = 7_000


def _store_params(events_: Sequence[Event]) -> dict[str, Any]:
    rows = [
        {
            "ord": ordinal,
            "id": str(event.id),
            "type": event.type,
            "occurred_at": event.occurred_at.isoformat(),
            "tenant": event.tenant,
            "actor_id": event.actor_id,
            "resource_id": str(event.resource_id),
            "job_id": None if event.job_id is None else str(event.job_id),
            "correlation_id": event.correlation_id,
            "payload": events.encode_payload(event.payload),
        }
        for ordinal, event in enumerate(events_, start=1)
    ]
    return {
        "n": len(events_),
        "events": json.dumps(rows, separators=(",", ":")),
    }


class SqlAlchemyLeaseStore:
    """Leader leases as a transaction sees them."""

    def __init__(self, transaction: Transaction) -> None:
        self._tx = transaction

    def holds(self, name: str, token: int) -> bool:
        """True when lease ``name`` is current at ``token``; the row stays share-locked, so
        no other replica can take the lease until this transaction ends."""
        statement = select(leases.c.token).where(leases.c.name == name, leases.c.token == token)
        if self._tx.dialect == "postgresql":
            statement = statement.where(leases.c.expires_at > func.now()).with_for_update(read=True)
        with errors.translated():
            return self._tx.write(statement).first() is not None


def event_values(event: Event) -> dict[str, Any]:
    """The column values of ``event``."""
    return {
        "sequence": event.sequence,
        "id": event.id,
        "type": event.type,
        "occurred_at": event.occurred_at,
        "tenant": event.tenant,
        "actor_id": event.actor_id,
        "resource_id": event.resource_id,
        "job_id": event.job_id,
        "correlation_id": event.correlation_id,
        "payload": events.encode_payload(event.payload),
    }


def event_from_row(row: Row[Any]) -> Event:
    """The Event a row of ``events`` holds."""
    m = row._mapping
    return Event(
        sequence=m["sequence"],
        id=m["id"],
        type=m["type"],
        occurred_at=m["occurred_at"],
        tenant=m["tenant"],
        actor_id=m["actor_id"],
        resource_id=m["resource_id"],
        job_id=m["job_id"],
        correlation_id=m["correlation_id"],
        payload=events.decode_payload(m["type"], m["payload"]),
    )
