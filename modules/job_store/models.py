"""The jobs and job_runs tables."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column
from sqlalchemy.sql.expression import false

from modules.base import Base, JsonDocument, UTCDateTime


class JobRow(Base):
    """One job; the schedule and retry policy are flattened into columns."""

    __tablename__ = "jobs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    tenant: Mapped[str] = mapped_column(String(200))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    labels: Mapped[dict[str, str]] = mapped_column(JsonDocument)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str] = mapped_column(String(16))
    owner: Mapped[str] = mapped_column(String(200))
    schedule_kind: Mapped[str | None] = mapped_column(String(16))
    schedule_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    schedule_cron: Mapped[str | None] = mapped_column(String(200))
    schedule_timezone: Mapped[str | None] = mapped_column(String(64))
    schedule_interval_s: Mapped[float | None] = mapped_column(Float)
    retry_max_attempts: Mapped[int] = mapped_column(Integer)
    retry_initial_backoff_s: Mapped[float] = mapped_column(Float)
    retry_max_backoff_s: Mapped[float] = mapped_column(Float)
    retry_multiplier: Mapped[float] = mapped_column(Float)
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    result_data: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    result_message: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(BigInteger)
    task_total: Mapped[int] = mapped_column(Integer, default=0)
    task_done: Mapped[int] = mapped_column(Integer, default=0)
    request_id: Mapped[str | None] = mapped_column(String(200))
    paused: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    progress: Mapped[float | None] = mapped_column(Float)
    progress_message: Mapped[str] = mapped_column(Text, default="", server_default="")

    __table_args__ = (
        UniqueConstraint("tenant", "owner", "request_id", name="uq_jobs_request"),
        Index("ix_jobs_tenant_id", "tenant", "id"),
        Index("ix_jobs_tenant_owner_id", "tenant", "owner", "id"),
        Index("ix_jobs_tenant_status_priority", "tenant", "status", "priority", "id"),
        Index("ix_jobs_tenant_status_id", "tenant", "status", "id"),
        Index("ix_jobs_tenant_kind_id", "tenant", "kind", "id"),
        # PostgreSQL only (created by migration 0003): GIN over labels for containment filters.
        Index("ix_jobs_status_next_run_at", "status", "next_run_at"),
        # What ClaimJobs reads: the PENDING jobs of a tenant, by kind, in claim order.
        Index(
            "ix_jobs_claim",
            "tenant",
            "kind",
            text("priority DESC"),
            "id",
            postgresql_where=text("status = 'PENDING'"),
            sqlite_where=text("status = 'PENDING'"),
        ),
    )


class JobRunRow(Base):
    """One attempt at a job."""

    __tablename__ = "job_runs"

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    tenant: Mapped[str] = mapped_column(String(200))
    attempt: Mapped[int] = mapped_column(Integer)
    started_by: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(16))
    result_data: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument)
    result_message: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    worker: Mapped[str] = mapped_column(String(200), default="", server_default="")
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_duration_s: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_job_runs_job_id_id", "job_id", "id"),
        # What the job stats count: a tenant's runs by when they finished.
        Index("ix_job_runs_tenant_finished_at", "tenant", "finished_at"),
        # What the reaper reads: the leases of running runs, soonest deadline first.
        Index(
            "ix_job_runs_lease",
            "lease_expires_at",
            postgresql_where=text("status = 'RUNNING'"),
            sqlite_where=text("status = 'RUNNING'"),
        ),
    )
