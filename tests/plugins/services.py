"""A private PostgreSQL database and Redis database for each test session.

Both are created at the start of the session and removed at its end, so test runs
(and developers running tests side by side) never see each other's data.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
import sqlalchemy as sa
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from shared.database import engine_for, migrate

SERVER_DATABASE_URL = os.environ.get(
    "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SERVER_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_DATABASES = range(1, 16)
REDIS_CLAIM_KEY = "sidtokens:test-session:db:{number}"


def _server_url() -> sa.URL:
    return make_url(SERVER_DATABASE_URL).set(drivername="postgresql+psycopg")


def _admin_engine() -> sa.Engine:
    return sa.create_engine(
        _server_url().set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
        connect_args={"connect_timeout": 5},
    )


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A fresh, migrated database that is dropped when the session ends."""
    name = f"sidtokens_test_{os.getpid()}_{secrets.token_hex(3)}"
    url = _server_url().set(database=name).render_as_string(hide_password=False)
    admin = _admin_engine()
    try:
        with admin.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        pytest.exit(
            f"PostgreSQL at {_server_url().render_as_string()} is unreachable "
            f"({exc.orig}); "
            "start it or point DATABASE_URL at a server that accepts connections",
            returncode=3,
        )
    migrate(url)
    yield url
    engine_for(url).dispose()
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A Redis database number claimed for this session alone, flushed at the end."""
    server = redis.Redis.from_url(SERVER_REDIS_URL)
    try:
        server.ping()
    except redis.ConnectionError as exc:
        pytest.exit(
            f"Redis at {SERVER_REDIS_URL} is unreachable ({exc}); start it or point "
            "REDIS_URL at a server that accepts connections",
            returncode=3,
        )
    claim = f"{os.getpid()}-{secrets.token_hex(4)}"
    for number in REDIS_DATABASES:
        if server.set(REDIS_CLAIM_KEY.format(number=number), claim, nx=True, ex=3600):
            break
    else:
        pytest.exit("every Redis database 1-15 is claimed by another test session")
    url = urlunsplit(urlsplit(SERVER_REDIS_URL)._replace(path=f"/{number}"))
    private = redis.Redis.from_url(url)
    private.flushdb()
    yield url
    private.flushdb()
    private.close()
    server.delete(REDIS_CLAIM_KEY.format(number=number))
    server.close()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


@pytest.fixture(scope="session")
def encryption_keys() -> tuple[str, str]:
    """Two Fernet keys: the first encrypts, both decrypt."""
    return Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture(scope="session")
def base_env(
    database_url: str, redis_url: str, encryption_keys: tuple[str, str]
) -> dict[str, str]:
    """Environment for a sid-tokens process in this test session (no SID yet)."""
    return {
        "SIDTOKENS_ENV": "test",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": redis_url,
        "SIDTOKENS_SECRET_KEY": secrets.token_urlsafe(32),
        "SIDTOKENS_ENCRYPTION_KEYS": ",".join(encryption_keys),
    }
