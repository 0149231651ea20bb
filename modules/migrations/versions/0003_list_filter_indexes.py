"""indexes that serve every list filter, and replays by tenant

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_tenant_kind_id", "jobs", ["tenant", "kind", "id"])
    op.create_index("ix_jobs_tenant_status_id", "jobs", ["tenant", "status", "id"])
    op.create_index("ix_tasks_tenant_priority_id", "tasks", ["tenant", "priority", "id"])
    op.create_index("ix_events_tenant_sequence", "events", ["tenant", "sequence"])
    if op.get_bind().dialect.name == "postgresql":
        # Label filters are containment (labels @> {"k": "v"}), which a GIN index answers.
        for table in ("jobs", "tasks"):
            op.create_index(
                f"ix_{table}_labels",
                table,
                ["labels"],
                postgresql_using="gin",
                postgresql_ops={"labels": "jsonb_path_ops"},
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in ("jobs", "tasks"):
            op.drop_index(f"ix_{table}_labels", table_name=table)
    op.drop_index("ix_events_tenant_sequence", table_name="events")
    op.drop_index("ix_tasks_tenant_priority_id", table_name="tasks")
    op.drop_index("ix_jobs_tenant_status_id", table_name="jobs")
    op.drop_index("ix_jobs_tenant_kind_id", table_name="jobs")
