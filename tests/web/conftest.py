"""Fixtures for the web tier: settings, an app, fresh users, and a view of storage.

The app runs in-process behind Flask's test client, while PostgreSQL, Redis and
the SID simulator are real. Each test gets a user row of its own, removed with its
token key and its events afterwards, so tests of other tiers never see it.
"""

from __future__ import annotations

import dataclasses
import itertools
import secrets
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import redis
import requests
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shared import settings as settings_module
from shared.database import engine_for
from shared.settings import Settings
from shared.token_cache import EVENTS_KEY, access_token_key
from tests.plugins.simulator import Simulator
from tests.support import Child, free_port, wait_for
from web import create_app, links

_user_ids = itertools.count(10**12 + secrets.randbelow(10**6) * 10**4)


@pytest.fixture
def web_env(base_env: dict[str, str], simulator: Simulator) -> dict[str, str]:
    """A web process's environment, against the shared simulator."""
    return {
        **base_env,
        **simulator.env(),
        "SIDTOKENS_HTTP_TIMEOUT_SECONDS": "1",
        "SIDTOKENS_AFTER_CONNECT_URL": "/account?tab=sid",
    }


@pytest.fixture
def make_settings(web_env: dict[str, str]) -> Callable[..., Settings]:
    """Settings from ``web_env`` with some variables replaced."""

    def make(**overrides: str) -> Settings:
        return settings_module.load({**web_env, **overrides})

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def app(settings: Settings) -> Flask:
    return create_app(settings)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def database(database_url: str) -> sa.Engine:
    return engine_for(database_url)


@pytest.fixture
def make_user(
    database: sa.Engine, redis_client: redis.Redis
) -> Iterator[Callable[[], str]]:
    """Insert fresh user rows; they, their keys and their events go at teardown."""
    created: list[str] = []

    def make() -> str:
        user_id = str(next(_user_ids))
        with database.begin() as connection:
            connection.execute(
                sa.text("INSERT INTO users (id) VALUES (:id)"), {"id": int(user_id)}
            )
        created.append(user_id)
        return user_id

    yield make
    for user_id in created:
        forget_user(database, redis_client, user_id)


@pytest.fixture
def user_id(make_user: Callable[[], str]) -> str:
    return make_user()


def forget_user(database: sa.Engine, redis_client: redis.Redis, user_id: str) -> None:
    with database.begin() as connection:
        connection.execute(
            sa.text("DELETE FROM users WHERE id = :id"), {"id": int(user_id)}
        )
    redis_client.delete(access_token_key(user_id))
    for entry_id, _ in events_of(redis_client, user_id):
        redis_client.xdel(EVENTS_KEY, entry_id)


def events_of(redis_client: redis.Redis, user_id: str) -> list[tuple[str, Any]]:
    """The ``sid:events`` entries about one user, oldest first."""
    entries: list[tuple[str, Any]] = redis_client.xrange(EVENTS_KEY)
    return [entry for entry in entries if entry[1].get("user_id") == user_id]


@dataclasses.dataclass(frozen=True)
class Snapshot:
    """Everything a flow may change for one user: the row, the key, the events."""

    row: tuple[Any, ...]
    token: str | None
    token_expires_at_ms: int
    events: tuple[str, ...]


def row_of(database: sa.Engine, user_id: str) -> dict[str, Any]:
    with database.connect() as connection:
        row = connection.execute(
            sa.text("SELECT * FROM users WHERE id = :id"), {"id": int(user_id)}
        ).one()
    return dict(row._mapping)


def snapshot(database: sa.Engine, redis_client: redis.Redis, user_id: str) -> Snapshot:
    key = access_token_key(user_id)
    return Snapshot(
        row=tuple(row_of(database, user_id).items()),
        token=redis_client.get(key),
        token_expires_at_ms=redis_client.pexpiretime(key),
        events=tuple(entry_id for entry_id, _ in events_of(redis_client, user_id)),
    )


@pytest.fixture
def storage_of(
    database: sa.Engine, redis_client: redis.Redis
) -> Callable[[str], Snapshot]:
    """Snapshot one user's row, token key and events, to compare before and after."""
    return lambda user_id: snapshot(database, redis_client, user_id)


def query_of(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


@dataclasses.dataclass
class Browser:
    """One browser's side of the flow: a test client with its own cookies."""

    client: FlaskClient
    simulator: Simulator
    settings: Settings

    def start(self, user_id: str) -> str:
        """Open the user's connect link; return SID's authorize URL."""
        response = self.client.get(links.connect_url(user_id, self.settings))
        assert response.status_code == 302, response.text
        return response.headers["Location"]

    def approve(self, user_id: str, sid_user: str = "alice") -> str:
        """Start a flow and approve on the simulator's page; return the callback URL."""
        return self.simulator.approve(self.start(user_id), sid_user)

    def finish(self, callback_url: str) -> Any:
        """Follow SID's redirect back to the callback; its response."""
        return self.client.get(callback_url)

    def connect(self, user_id: str, sid_user: str = "alice") -> Any:
        """The whole flow; the callback's response."""
        return self.finish(self.approve(user_id, sid_user))


@pytest.fixture
def browser(client: FlaskClient, simulator: Simulator, settings: Settings) -> Browser:
    return Browser(client, simulator, settings)


@pytest.fixture
def connected_user(browser: Browser, user_id: str) -> str:
    """A user who went through the flow once, so a failure has something to spoil."""
    response = browser.connect(user_id, sid_user="carol")
    assert response.status_code == 302, response.text
    assert query_of(response.headers["Location"])["sid"] == "connected"
    return user_id


# A web tier in a real server process, for tests that drive Chromium.

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 30.0


@dataclasses.dataclass
class WebServer:
    """A web tier in its own process, and the settings it was started with."""

    origin: str
    settings: Settings
    simulator: Simulator
    child: Child


def _answers(url: str) -> bool:
    return requests.get(url, timeout=1).status_code == 200


@pytest.fixture
def web_server(
    base_env: dict[str, str],
    start_simulator: Callable[..., Simulator],
    tmp_path: Path,
) -> Iterator[WebServer]:
    """``flask --app web run`` on a free port, with a simulator that redirects to it."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    simulator = start_simulator(redirect_uri=f"{origin}/api/sid/callback")
    env = {
        **base_env,
        **simulator.env(),
        "SIDTOKENS_DEMO": "1",
        "SIDTOKENS_AFTER_CONNECT_URL": "/",
        "SIDTOKENS_LOG_LEVEL": "DEBUG",
        "SIDTOKENS_STATUS_TOKEN": secrets.token_urlsafe(16),
    }
    command = [
        sys.executable,
        "-m",
        "flask",
        "--app",
        "web",
        "run",
        "--port",
        str(port),
    ]
    child = Child(command, env=env, log_path=tmp_path / "web.log")
    try:
        wait_for(
            lambda: child.is_running() and _answers(f"{origin}/healthz"),
            timeout=STARTUP_TIMEOUT,
            message="the web tier",
        )
    except AssertionError as error:
        child.stop()
        raise AssertionError(f"{error}\n--- web output ---\n{child.output()}") from None
    yield WebServer(origin, settings_module.load(env), simulator, child)
    child.stop()
