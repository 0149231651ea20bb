"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('event_counter',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('last_sequence', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_event_counter'))
    )
    # The single counter row every writer locks to take its sequences.
    op.execute("INSERT INTO event_counter (id, last_sequence) VALUES (1, 0)")
    op.create_table('events',
    sa.Column('sequence', sa.BigInteger(), autoincrement=False, nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=False),
    sa.Column('occurred_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('actor_id', sa.String(length=200), nullable=False),
    sa.Column('resource_id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('correlation_id', sa.String(length=200), nullable=True),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.PrimaryKeyConstraint('sequence', name=op.f('pk_events')),
    sa.UniqueConstraint('id', name=op.f('uq_events_id'))
    )
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.create_index('ix_events_occurred_at', ['occurred_at'], unique=False)

    op.create_table('jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('priority', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('schedule_kind', sa.String(length=16), nullable=True),
    sa.Column('schedule_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('schedule_cron', sa.String(length=200), nullable=True),
    sa.Column('schedule_timezone', sa.String(length=64), nullable=True),
    sa.Column('schedule_interval_s', sa.Float(), nullable=True),
    sa.Column('retry_max_attempts', sa.Integer(), nullable=False),
    sa.Column('retry_initial_backoff_s', sa.Float(), nullable=False),
    sa.Column('retry_max_backoff_s', sa.Float(), nullable=False),
    sa.Column('retry_multiplier', sa.Float(), nullable=False),
    sa.Column('attempt_count', sa.Integer(), nullable=False),
    sa.Column('result_data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('result_message', sa.Text(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('task_total', sa.Integer(), nullable=False),
    sa.Column('task_done', sa.Integer(), nullable=False),
    sa.Column('request_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('tenant', 'owner', 'request_id', name='uq_jobs_request')
    )
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.create_index('ix_jobs_status_next_run_at', ['status', 'next_run_at'], unique=False)
        batch_op.create_index('ix_jobs_tenant_id', ['tenant', 'id'], unique=False)
        batch_op.create_index('ix_jobs_tenant_owner_id', ['tenant', 'owner', 'id'], unique=False)
        batch_op.create_index('ix_jobs_tenant_status_priority', ['tenant', 'status', 'priority', 'id'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('title', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('priority', sa.String(length=16), nullable=False),
    sa.Column('owner', sa.String(length=200), nullable=False),
    sa.Column('assignee', sa.String(length=200), nullable=True),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('job_id', sa.Uuid(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('cancel_reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('version', sa.BigInteger(), nullable=False),
    sa.Column('request_id', sa.String(length=200), nullable=True),
    sa.ForeignKeyConstraint(['parent_id'], ['tasks.id'], name=op.f('fk_tasks_parent_id_tasks'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks')),
    sa.UniqueConstraint('tenant', 'owner', 'request_id', name='uq_tasks_request')
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index('ix_tasks_parent_id_id', ['parent_id', 'id'], unique=False)
        batch_op.create_index('ix_tasks_tenant_assignee_id', ['tenant', 'assignee', 'id'], unique=False)
        batch_op.create_index('ix_tasks_tenant_due_at', ['tenant', 'due_at'], unique=False)
        batch_op.create_index('ix_tasks_tenant_id', ['tenant', 'id'], unique=False)
        batch_op.create_index('ix_tasks_tenant_job_id_id', ['tenant', 'job_id', 'id'], unique=False)
        batch_op.create_index('ix_tasks_tenant_owner_id', ['tenant', 'owner', 'id'], unique=False)
        batch_op.create_index('ix_tasks_tenant_status_id', ['tenant', 'status', 'id'], unique=False)

    op.create_table('job_runs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('tenant', sa.String(length=200), nullable=False),
    sa.Column('attempt', sa.Integer(), nullable=False),
    sa.Column('started_by', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('result_data', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('result_message', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_job_runs_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_job_runs'))
    )
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.create_index('ix_job_runs_job_id_id', ['job_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('job_runs', schema=None) as batch_op:
        batch_op.drop_index('ix_job_runs_job_id_id')

    op.drop_table('job_runs')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index('ix_tasks_tenant_status_id')
        batch_op.drop_index('ix_tasks_tenant_owner_id')
        batch_op.drop_index('ix_tasks_tenant_job_id_id')
        batch_op.drop_index('ix_tasks_tenant_id')
        batch_op.drop_index('ix_tasks_tenant_due_at')
        batch_op.drop_index('ix_tasks_tenant_assignee_id')
        batch_op.drop_index('ix_tasks_parent_id_id')

    op.drop_table('tasks')
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_jobs_tenant_status_priority')
        batch_op.drop_index('ix_jobs_tenant_owner_id')
        batch_op.drop_index('ix_jobs_tenant_id')
        batch_op.drop_index('ix_jobs_status_next_run_at')

    op.drop_table('jobs')
    with op.batch_alter_table('events', schema=None) as batch_op:
        batch_op.drop_index('ix_events_occurred_at')

    op.drop_table('events')
    op.drop_table('event_counter')
