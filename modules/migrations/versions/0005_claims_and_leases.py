"""claims: leases on runs, cancellation requests and progress on jobs

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

PENDING = sa.text("status = 'PENDING'")
RUNNING = sa.text("status = 'RUNNING'")


def upgrade() -> None:
    with op.batch_alter_table("jobs") as jobs:
        jobs.add_column(sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False))
        jobs.add_column(sa.Column("progress", sa.Float(), nullable=True))
        jobs.add_column(sa.Column("progress_message", sa.Text(), server_default="", nullable=False))
    with op.batch_alter_table("job_runs") as runs:
        runs.add_column(sa.Column("worker", sa.String(length=200), server_default="", nullable=False))
        runs.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        runs.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))
        runs.add_column(sa.Column("lease_duration_s", sa.Float(), nullable=True))
    op.create_index(
        "ix_jobs_claim",
        "jobs",
        ["tenant", "kind", sa.text("priority DESC"), "id"],
        postgresql_where=PENDING,
        sqlite_where=PENDING,
    )
    op.create_index(
        "ix_job_runs_lease",
        "job_runs",
        ["lease_expires_at"],
        postgresql_where=RUNNING,
        sqlite_where=RUNNING,
    )


def downgrade() -> None:
    op.drop_index("ix_job_runs_lease", table_name="job_runs")
    op.drop_index("ix_jobs_claim", table_name="jobs")
    with op.batch_alter_table("job_runs") as runs:
        for column in ("lease_duration_s", "heartbeat_at", "lease_expires_at", "worker"):
            runs.drop_column(column)
    with op.batch_alter_table("jobs") as jobs:
        for column in ("progress_message", "progress", "cancel_requested"):
            jobs.drop_column(column)
