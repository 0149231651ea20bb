"""The events table and the single-row sequence counter that orders it."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from modules.base import Base, JsonDocument, UTCDateTime


class EventRow(Base):
    """One event of the log; ``sequence`` is assigned from event_counter."""

    __tablename__ = "events"

    sequence: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    id: Mapped[uuid.UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    tenant: Mapped[str] = mapped_column(String(200))
    actor_id: Mapped[str] = mapped_column(String(200))
    resource_id: Mapped[uuid.UUID]
    job_id: Mapped[uuid.UUID | None]
    correlation_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)

    __table_args__ = (
        Index("ix_events_occurred_at", "occurred_at"),
        Index("ix_events_tenant_sequence", "tenant", "sequence"),
    )


class EventCounterRow(Base):
    """The last sequence handed out. Writers lock this row from assignment to commit,

    so events commit in sequence order and a reader never sees a later sequence
    before an earlier one (see "Transactions and events" in docs/architecture.md).
    """

    __tablename__ = "event_counter"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_sequence: Mapped[int] = mapped_column(BigInteger)


class SubscriberPositionRow(Base):
    """How far a durable subscriber (a reaction) has processed the log."""

    __tablename__ = "subscriber_positions"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    position: Mapped[int] = mapped_column(BigInteger)


class LeaderLeaseRow(Base):
    """Who leads (the scheduler), until when, and the fencing token of that leadership."""

    __tablename__ = "leader_leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    token: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
