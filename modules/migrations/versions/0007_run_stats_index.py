"""job stats: an index on the finish times of a tenant's runs

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29
"""

from __future__ import annotations

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_job_runs_tenant_finished_at", "job_runs", ["tenant", "finished_at"])


def downgrade() -> None:
    op.drop_index("ix_job_runs_tenant_finished_at", table_name="job_runs")
