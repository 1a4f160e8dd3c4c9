"""Fixtures for the worker's tests: a private database, clean state, runtimes, fleets.

Worker tests claim and rewrite every connected user they can see, so they get a
database of their own (created and migrated once per session) and start each test
with an empty ``users`` table and an empty Redis database.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from shared import runtime as runtime_module
from shared import settings as settings_module
from shared.database import engine_for, migrate
from shared.runtime import Runtime
from tests.plugins.simulator import Simulator
from tests.worker.fleet import Fleet

#: Settings every worker test starts from: short periods, quiet limits.
TEST_SETTINGS = {
    "SIDTOKENS_SCAN_INTERVAL_SECONDS": "1",
    "SIDTOKENS_REWARM_INTERVAL_SECONDS": "60",
    "SIDTOKENS_CACHE_MARGIN_SECONDS": "3",
    "SIDTOKENS_REFRESH_AHEAD_SECONDS": "600",
    "SIDTOKENS_HTTP_TIMEOUT_SECONDS": "2",
    "SIDTOKENS_REFRESH_LEASE_SECONDS": "10",
    "SIDTOKENS_TOKEN_RATE_LIMIT": "200",
    "SIDTOKENS_WORKER_CONCURRENCY": "8",
    "SIDTOKENS_LOG_LEVEL": "INFO",
}


@pytest.fixture(scope="session")
def worker_database_url(database_url: str) -> Iterator[str]:
    """A database for worker tests alone, dropped when the session ends."""
    name = f"sidtokens_worker_{os.getpid()}_{secrets.token_hex(3)}"
    url = make_url(database_url).set(database=name)
    rendered = url.render_as_string(hide_password=False)
    migrate(rendered)
    yield rendered
    engine_for(rendered).dispose()
    admin = sa.create_engine(
        url.set(database="postgres"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.NullPool,
    )
    with admin.connect() as connection:
        connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(autouse=True)
def clean_slate(worker_database_url: str, redis_url: str) -> Iterator[None]:
    """No users, no Redis keys, no cached settings: every test starts from nothing."""
    _wipe(worker_database_url, redis_url)
    settings_module.get.cache_clear()
    runtime_module.get.cache_clear()
    yield
    settings_module.get.cache_clear()
    runtime_module.get.cache_clear()


def _wipe(database_url: str, redis_url: str) -> None:
    with engine_for(database_url).begin() as connection:
        connection.execute(sa.text("TRUNCATE users"))
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()


@pytest.fixture
def make_env(
    base_env: dict[str, str], worker_database_url: str
) -> Callable[..., dict[str, str]]:
    """The environment of a worker process pointed at ``simulator``."""

    def make(simulator: Simulator, **overrides: str) -> dict[str, str]:
        return {
            **base_env,
            "DATABASE_URL": worker_database_url,
            **simulator.env(),
            **TEST_SETTINGS,
            **overrides,
        }

    return make


@pytest.fixture
def make_runtime(
    make_env: Callable[..., dict[str, str]],
) -> Callable[..., Runtime]:
    """A runtime in this process, configured like a worker would be."""

    def make(simulator: Simulator, **overrides: str) -> Runtime:
        env = make_env(simulator, **overrides)
        return Runtime.from_settings(settings_module.load(env))

    return make


@pytest.fixture
def runtime(simulator: Simulator, make_runtime: Callable[..., Runtime]) -> Runtime:
    """The in-process runtime against the shared simulator."""
    return make_runtime(simulator)


@pytest.fixture
def process_env(
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[[dict[str, str]], None]:
    """Make ``env`` this process's environment, for code that reads it itself."""

    def apply(env: dict[str, str]) -> None:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings_module.get.cache_clear()
        runtime_module.get.cache_clear()

    return apply


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], Fleet]]:
    """Start workers and beats with an environment; all are stopped at teardown."""
    fleets: list[Fleet] = []

    def start(env: dict[str, str]) -> Fleet:
        started = Fleet(tmp_path, env)
        fleets.append(started)
        return started

    yield start
    for started in fleets:
        started.stop()
