"""tasks remember the owners of the tasks above them, who may read them

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations


import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    document = sa.JSON().with_variant(JSONB(), "postgresql")
    with op.batch_alter_table("tasks") as tasks:
        tasks.add_column(sa.Column("owners_above", document, server_default="[]", nullable=False))
    # Existing subtasks: parents are older than their children (ids are time-ordered), so
    # one pass in id order sees each parent's list before its children need it.
    connection = op.get_bind()
    rows = connection.execute(
        sa.text("SELECT id, parent_id, owner FROM tasks WHERE parent_id IS NOT NULL OR id IN "
                "(SELECT parent_id FROM tasks WHERE parent_id IS NOT NULL) ORDER BY id")
    ).all()
    above: dict[object, list[str]] = {}
    owner_of: dict[object, str] = {}
    for task_id, parent_id, owner in rows:
        owner_of[task_id] = owner
        if parent_id is None:
            above[task_id] = []
            continue
        chain = [*above.get(parent_id, []), owner_of.get(parent_id, "")]
        above[task_id] = [o for o in dict.fromkeys(chain) if o]
        connection.execute(
            sa.text("UPDATE tasks SET owners_above = :owners WHERE id = :id").bindparams(
                sa.bindparam("owners", type_=document)
            ),
            {"owners": above[task_id], "id": task_id},
        )


def downgrade() -> None:
    with op.batch_alter_table("tasks") as tasks:
        tasks.drop_column("owners_above")
