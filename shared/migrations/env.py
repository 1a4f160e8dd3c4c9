"""Alembic environment: runs our migrations against the configured database."""

from __future__ import annotations

from alembic import context

from shared.database import engine_for
from shared.models import Base

config = context.config
database_url = config.attributes["database_url"]
version_table = config.get_main_option("version_table")

with engine_for(database_url).connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=version_table,
        transaction_per_migration=True,
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
