"""Alembic environment: runs on the connection modules.db.migrate hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

import modules.event_store.models
import modules.job_store.models
import modules.task_store.models  # noqa: F401  (the models register their tables)
from modules.base import Base

target_metadata = Base.metadata


def run() -> None:
    """Migrate on the given connection, or on the URL of ``-x url=...`` from the alembic CLI."""
    connection = context.config.attributes.get("connection")
    if connection is None:
        url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///var/jobtask.db")
        with create_engine(url).begin() as owned:
            _migrate(owned)
    else:
        _migrate(connection)


def _migrate(connection: Connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


run()
