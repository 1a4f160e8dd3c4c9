"""Create ``users`` when absent, then add the ``sid_*`` columns and the due index.

The host application usually owns ``users`` already, so this migration looks
before it writes: it creates the table only when it is missing, adds only the
columns that are missing, and creates the partial index only once.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIMESTAMP = sa.DateTime(timezone=True)
DUE_INDEX = "ix_users_sid_refresh_due"


def _columns() -> tuple[sa.Column[object], ...]:
    """Fresh column objects: a Column can belong to one table only."""
    return (
        sa.Column("sid_access_token", sa.Text),
        sa.Column("sid_refresh_token", sa.Text),
        sa.Column("sid_expires_at", TIMESTAMP),
        sa.Column("sid_status", sa.Text),
        sa.Column("sid_connected_at", TIMESTAMP),
        sa.Column("sid_refreshed_at", TIMESTAMP),
        sa.Column("sid_refresh_at", TIMESTAMP),
        sa.Column("sid_lease_until", TIMESTAMP),
        sa.Column(
            "sid_refresh_version", sa.BigInteger, nullable=False, server_default="0"
        ),
        sa.Column(
            "sid_refresh_attempts", sa.Integer, nullable=False, server_default="0"
        ),
        sa.Column("sid_last_error", sa.Text),
    )


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if not inspector.has_table("users"):
        op.create_table(
            "users", sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True)
        )
        existing: set[str] = {"id"}
    else:
        existing = {column["name"] for column in inspector.get_columns("users")}

    for column in _columns():
        if column.name not in existing:
            op.add_column("users", column)

    indexes = {
        index["name"] for index in sa.inspect(op.get_bind()).get_indexes("users")
    }
    if DUE_INDEX not in indexes:
        op.create_index(
            DUE_INDEX,
            "users",
            ["sid_refresh_at"],
            postgresql_where=sa.text("sid_status = 'connected'"),
        )


def downgrade() -> None:
    op.drop_index(DUE_INDEX, table_name="users")
    for column in reversed(_columns()):
        op.drop_column("users", column.name)
