"""tasks remember the owners of the tasks above them, who may read them

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections import defaultdict

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
    readers = op.create_table(
        "task_readers",
        sa.Column("tenant", sa.String(length=200), nullable=False),
        sa.Column("reader", sa.String(length=200), nullable=False),
        sa.Column("task_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["task_id"], ["tasks.id"], name=op.f("fk_task_readers_task_id_tasks"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("tenant", "reader", "task_id", name=op.f("pk_task_readers")),
    )
    _fill_in(document, readers)


def _fill_in(document: sa.types.TypeEngine[object], readers: sa.Table | None) -> None:
    """Give every existing subtask the owners above it, walking each tree from its root
    (ids are not trusted to order parents before children)."""
    connection = op.get_bind()
    query = sa.text("SELECT id, parent_id, owner, tenant FROM tasks").columns(
        sa.column("id", sa.Uuid()),
        sa.column("parent_id", sa.Uuid()),
        sa.column("owner", sa.String()),
        sa.column("tenant", sa.String()),
    )
    rows = connection.execute(query).all()
    children: dict[object, list[tuple[object, str, str]]] = defaultdict(list)
    roots: list[tuple[object, str, str]] = []
    for task_id, parent_id, owner, tenant in rows:
        if parent_id is None:
            roots.append((task_id, owner, tenant))
        else:
            children[parent_id].append((task_id, owner, tenant))
    update = sa.text("UPDATE tasks SET owners_above = :owners WHERE id = :id").bindparams(
        sa.bindparam("owners", type_=document), sa.bindparam("id", type_=sa.Uuid())
    )
    level: list[tuple[object, str, str, list[str]]] = [(task_id, owner, tenant, []) for task_id, owner, tenant in roots]
    while level:
        below: list[tuple[object, str, str, list[str]]] = []
        for task_id, owner, tenant, above in level:
            owners = list(dict.fromkeys([*above, owner]))
            for child_id, child_owner, child_tenant in children.get(task_id, ()):
                connection.execute(update, {"owners": owners, "id": child_id})
                if readers is not None:
                    connection.execute(
                        sa.insert(readers),
                        [{"tenant": child_tenant, "reader": o, "task_id": child_id} for o in owners],
                    )
                below.append((child_id, child_owner, child_tenant, owners))
        level = below


def downgrade() -> None:
    op.drop_table("task_readers")
    with op.batch_alter_table("tasks") as tasks:
        tasks.drop_column("owners_above")
