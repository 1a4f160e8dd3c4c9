"""Connections to PostgreSQL and the schema migration behind ``sidtokens migrate``."""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session, sessionmaker

from shared.errors import StorageError

log = logging.getLogger("sidtokens.database")

MIGRATIONS = Path(__file__).parent / "migrations"
#: Our own Alembic version table, so a host application's Alembic is left alone.
VERSION_TABLE = "sidtokens_alembic_version"


def _describe(url: URL) -> str:
    return url.render_as_string(hide_password=True)


@functools.cache
def engine_for(database_url: str) -> Engine:
    """One pooled engine per database URL and process."""
    return sa.create_engine(
        database_url,
        pool_pre_ping=True,
        # A failed statement's message would otherwise carry its parameters: tokens.
        hide_parameters=True,
        pool_size=5,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


def sessions(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(engine_for(database_url), expire_on_commit=False)


@contextlib.contextmanager
def unreachable_as_storage_error(database_url: str | None = None) -> Iterator[None]:
    """Turn a database that cannot be reached into a clear :class:`StorageError`."""
    try:
        yield
    except OperationalError as exc:
        where = f" at {_describe(make_url(database_url))}" if database_url else ""
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else ""
        raise StorageError(
            f"PostgreSQL{where} did not answer ({reason or type(exc.orig).__name__}); "
            "check that it is running and that DATABASE_URL is right, and run "
            "`sidtokens migrate` if the database or schema is missing"
        ) from exc


def create_database_if_missing(database_url: str) -> bool:
    """Create the database named in ``database_url`` when the server allows it.

    Returns whether it was created.
    """
    url = make_url(database_url)
    name = url.database
    if not name:
        return False
    server = sa.create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    try:
        with unreachable_as_storage_error(database_url), server.connect() as connection:
            exists = connection.scalar(
                sa.text("SELECT 1 FROM pg_database WHERE datname = :name"),
                {"name": name},
            )
            if exists:
                return False
            quoted = connection.dialect.identifier_preparer.quote(name)
            try:
                connection.execute(sa.text(f"CREATE DATABASE {quoted}"))
            except ProgrammingError as exc:
                raise StorageError(
                    f"database {name!r} does not exist and this user may not create "
                    "it; "
                    "create it yourself or grant CREATEDB"
                ) from exc
    finally:
        server.dispose()
    log.info("created database %s", name)
    return True


def migrate(database_url: str) -> None:
    """Create the database when missing, then create or upgrade our schema."""
    from alembic import command
    from alembic.config import Config

    create_database_if_missing(database_url)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("version_table", VERSION_TABLE)
    config.attributes["database_url"] = database_url
    with unreachable_as_storage_error(database_url):
        command.upgrade(config, "head")
