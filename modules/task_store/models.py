"""The tasks table, with the indexes the listing filters need."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from modules.base import Base, JsonDocument, UTCDateTime


class TaskRow(Base):
    """One task; ``parent_id`` nests it under another of the same tenant and job."""

    __tablename__ = "tasks"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(200))
    assignee: Mapped[str | None] = mapped_column(String(200))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"))
    # A task outlives its job's deletion (it is unlinked by policy), so no foreign key here.
    job_id: Mapped[uuid.UUID | None]
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    labels: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    cancel_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str | None] = mapped_column(String(200))
    # The owners of the tasks above (a JSON list), who may read this one.
    owners_above: Mapped[list[str]] = mapped_column(JsonDocument, default=list, server_default="[]")

    __table_args__ = (
        UniqueConstraint("tenant", "owner", "request_id", name="uq_tasks_request"),
        Index("ix_tasks_tenant_id", "tenant", "id"),
        Index("ix_tasks_tenant_owner_id", "tenant", "owner", "id"),
        Index("ix_tasks_tenant_assignee_id", "tenant", "assignee", "id"),
        Index("ix_tasks_tenant_status_id", "tenant", "status", "id"),
        Index("ix_tasks_tenant_priority_id", "tenant", "priority", "id"),
        # PostgreSQL only (created by migration 0003): GIN over labels for containment filters.
        Index("ix_tasks_tenant_job_id_id", "tenant", "job_id", "id"),
        Index("ix_tasks_parent_id_id", "parent_id", "id"),
        Index("ix_tasks_tenant_due_at", "tenant", "due_at"),
    )


class TaskReaderRow(Base):
    """Who may read a task besides its owner and assignee: the owners of the tasks above it.
    The same as the task's ``owners_above``, kept as rows so a member's listing finds them
    through an index."""

    __tablename__ = "task_readers"

    tenant: Mapped[str] = mapped_column(String(200), primary_key=True)
    reader: Mapped[str] = mapped_column(String(200), primary_key=True)
    task_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tasks.id", ondelete="CASCADE"), primary_key=True)
