"""The ``users`` columns sid-tokens owns, as a typed SQLAlchemy model.

The host application owns the ``users`` table and its rows; we own the ``sid_*``
columns. ``id`` may be a bigint, text or UUID in the host's table, so the model
maps it as text and binds ids without a cast, which lets PostgreSQL compare them
with whatever type the column really has.

Refresh bookkeeping, beside the three columns SID's documentation names:

- ``sid_refresh_at``: when the next refresh is due (expiry minus the refresh-ahead
  window, spread with jitter); the scan's partial index covers it.
- ``sid_lease_until``: while a worker holds the user's refresh, when its claim
  lapses. A lapsed lease makes the user due again.
- ``sid_refresh_version``: the fencing token. Every claim increments it, and every
  write of a refresh's result requires the version its claim returned.
- ``sid_refresh_attempts``, ``sid_last_error``: consecutive transient failures and
  the reason of the last failure, for backoff and for operators.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import UserDefinedType


class Status(enum.StrEnum):
    """The values of ``sid_status``."""

    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"
    DISCONNECTED = "disconnected"


class UserId(UserDefinedType[str]):
    """A primary key of unknown type, read as text and bound without a cast."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TEXT"

    def bind_processor(self, dialect: Dialect) -> Any:
        return lambda value: None if value is None else str(value)

    def result_processor(self, dialect: Dialect, coltype: object) -> Any:
        return lambda value: None if value is None else str(value)


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(UserId(), primary_key=True)
    sid_access_token: Mapped[str | None] = mapped_column(sa.Text)
    sid_refresh_token: Mapped[str | None] = mapped_column(sa.Text)
    sid_expires_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sid_status: Mapped[str | None] = mapped_column(sa.Text)
    sid_connected_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True)
    )
    sid_refreshed_at: Mapped[datetime | None] = mapped_column(
        sa.DateTime(timezone=True)
    )
    sid_refresh_at: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sid_lease_until: Mapped[datetime | None] = mapped_column(sa.DateTime(timezone=True))
    sid_refresh_version: Mapped[int] = mapped_column(
        sa.BigInteger, nullable=False, server_default="0"
    )
    sid_refresh_attempts: Mapped[int] = mapped_column(
        sa.Integer, nullable=False, server_default="0"
    )
    sid_last_error: Mapped[str | None] = mapped_column(sa.Text)

    __table_args__ = (
        sa.Index(
            "ix_users_sid_refresh_due",
            "sid_refresh_at",
            postgresql_where=sa.text("sid_status = 'connected'"),
        ),
    )

    def __repr__(self) -> str:
        return f"<User id={self.id!r} sid_status={self.sid_status!r}>"
