"""`sidtokens migrate` adopts a host application's existing users table gently."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shared.crypto import TokenCipher
from shared.database import engine_for, migrate, sessions
from shared.oauth import TokenGrant
from shared.settings import load
from shared.users import fetch_connection, save_connection

HOST_IDS = {"text": "user-a", "uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"}


@pytest.fixture(params=sorted(HOST_IDS))
def id_type(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def host_database(database_url: str, id_type: str) -> Iterator[str]:
    """A database that a host application created, with its own users table."""
    name = f"sidtokens_host_{secrets.token_hex(4)}"
    url = make_url(database_url).set(database=name)
    admin = sa.create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    rendered = url.render_as_string(hide_password=False)
    with engine_for(rendered).begin() as connection:
        connection.execute(
            sa.text(
                f"CREATE TABLE users (id {id_type} PRIMARY KEY, email text NOT NULL, "
                "sid_access_token text)"
            )
        )
        connection.execute(
            sa.text("INSERT INTO users VALUES (:id, 'a@example.com', 'legacy-at')"),
            {"id": HOST_IDS[id_type]},
        )
    yield rendered
    engine_for(rendered).dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_an_existing_table_gains_only_the_missing_columns(
    host_database: str, id_type: str
) -> None:
    """The host's id type, columns and rows stay; our columns and index are added."""
    migrate(host_database)
    migrate(host_database)

    inspector = sa.inspect(engine_for(host_database))
    columns = {column["name"]: column for column in inspector.get_columns("users")}
    assert str(columns["id"]["type"]) == id_type.upper()
    assert {"email", "sid_refresh_token", "sid_expires_at", "sid_status"} <= set(
        columns
    )
    indexes = {index["name"] for index in inspector.get_indexes("users")}
    assert "ix_users_sid_refresh_due" in indexes
    with engine_for(host_database).connect() as connection:
        row = connection.execute(sa.text("SELECT * FROM users")).mappings().one()
    assert (str(row["id"]), row["email"], row["sid_access_token"]) == (
        HOST_IDS[id_type],
        "a@example.com",
        "legacy-at",
    )


def test_host_ids_work_through_the_shared_storage(
    host_database: str, id_type: str
) -> None:
    """A connection saved under a text or UUID id reads back as saved."""
    migrate(host_database)
    settings = load({"SIDTOKENS_ENV": "development", "DATABASE_URL": host_database})
    cipher = TokenCipher(())
    grant = TokenGrant(
        access_token="at-new",
        refresh_token="rt-new",
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        lifetime=timedelta(hours=1),
    )

    with sessions(host_database).begin() as session:
        save_connection(
            session, HOST_IDS[id_type], grant, cipher=cipher, settings=settings
        )
    with sessions(host_database)() as session:
        connection = fetch_connection(session, HOST_IDS[id_type], cipher)

    assert connection.status == "connected"
    assert (connection.access_token, connection.refresh_token) == ("at-new", "rt-new")
