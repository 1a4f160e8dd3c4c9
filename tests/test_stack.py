"""`make run`'s stack: the Procfile under honcho, used as a person would use it.

Every Procfile entry runs as a real process under honcho (simulator, gunicorn,
a Celery worker and beat), configured the way `make run` configures them but on
free ports and this session's database and Redis. A user is connected through the
demo page and must then be refreshed by the worker.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from urllib.parse import urljoin

import pytest
import requests
import sqlalchemy as sa

from shared import stack
from shared.database import engine_for
from shared.token_cache import access_token_key
from tests.plugins.simulator import Simulator
from tests.support import BIN, ROOT, Child, free_port, wait_for

DEMO_USER = "1"
CONNECT_LINK = re.compile(
    r'data-user="1">.*?href="([^"]+/api/sid/connect\?t=[^"]+)"', re.S
)


@pytest.fixture
def running_stack(
    base_env: dict[str, str], database_url: str, tmp_path: Path
) -> Iterator[tuple[str, Simulator]]:
    """The Procfile's four processes under honcho; yields the web origin and SID."""
    web_port, simulator_port = free_port(), free_port()
    origin = f"http://127.0.0.1:{web_port}"
    sid = f"http://127.0.0.1:{simulator_port}"
    env = {
        **stack.development_env(),
        **base_env,
        "SIDTOKENS_DEMO": "1",
        "SIDTOKENS_WEB_BIND": f"127.0.0.1:{web_port}",
        "SID_REDIRECT_URI": f"{origin}/api/sid/callback",
        "SID_AUTHORIZE_URL": f"{sid}/api/oauth/authorize",
        "SID_TOKEN_URL": f"{sid}/oauth/token",
        "SID_REVOKE_URL": f"{sid}/oauth/revoke",
        "SID_QUERY_URL": f"{sid}/v1/users/me/query",
        "SIMULATOR_PORT": str(simulator_port),
        "SIMULATOR_ACCESS_TOKEN_TTL": "20",
        "SIMULATOR_RATE_LIMIT": "0",
        "SIDTOKENS_CACHE_MARGIN_SECONDS": "3",
        "SIDTOKENS_SCAN_INTERVAL_SECONDS": "1",
        "SIDTOKENS_REFRESH_LEASE_SECONDS": "15",
        "SIDTOKENS_HTTP_TIMEOUT_SECONDS": "3",
        "SIDTOKENS_WORKER_CONCURRENCY": "2",
        "SIDTOKENS_WORKER_METRICS_PORT": "0",
        "SIDTOKENS_BEAT_SCHEDULE_FILE": str(tmp_path / "beat-schedule"),
    }
    env_file = tmp_path / "empty.env"
    env_file.write_text("")
    honcho = shutil.which("honcho", path=str(BIN)) or "honcho"
    command = [honcho, "-f", str(ROOT / "Procfile"), "-e", str(env_file), "start"]
    child = Child(
        [*command, *stack.processes(env)], env=env, log_path=tmp_path / "stack.log"
    )
    simulator = Simulator(
        child,
        port=simulator_port,
        client_id=env["SID_CLIENT_ID"],
        client_secret=env["SID_CLIENT_SECRET"],
        redirect_uri=env["SID_REDIRECT_URI"],
    )
    try:
        wait_for(
            lambda: _answers(f"{origin}/readyz") and _answers(f"{sid}/healthz"),
            timeout=60,
            message="the web tier and the simulator under honcho",
        )
        yield origin, simulator
    finally:
        child.stop()
        with engine_for(database_url).begin() as connection:
            connection.execute(
                sa.text("DELETE FROM users WHERE id = ANY(:ids)"),
                {"ids": [1, 2, 3, 4, 5]},
            )


def _answers(url: str) -> bool:
    return requests.get(url, timeout=2).status_code == 200


def _row(database_url: str) -> sa.Row[tuple[datetime | None, int, str | None]]:
    with engine_for(database_url).connect() as connection:
        return connection.execute(
            sa.text(
                "SELECT sid_refreshed_at, sid_refresh_version, sid_status "
                "FROM users WHERE id = :id"
            ),
            {"id": int(DEMO_USER)},
        ).one()


@pytest.mark.slow
def test_a_user_connected_on_the_demo_page_is_refreshed_by_the_worker(
    running_stack: tuple[str, Simulator], database_url: str, redis_client: object
) -> None:
    """Demo page, consent, callback; then beat and the worker refresh the token."""
    origin, simulator = running_stack
    browser = requests.Session()
    demo = browser.get(f"{origin}/", timeout=10)
    link = CONNECT_LINK.search(demo.text)
    assert link is not None, demo.text[:2000]
    to_sid = browser.get(urljoin(origin, link[1]), allow_redirects=False, timeout=10)
    callback = simulator.approve(to_sid.headers["Location"], "alice")
    landing = browser.get(callback, allow_redirects=False, timeout=10)
    assert landing.headers["Location"] == "/?sid=connected"
    connected = _row(database_url)
    first_token = redis_client.get(access_token_key(DEMO_USER))  # type: ignore[attr-defined]

    refreshed = wait_for(
        lambda: (
            (row := _row(database_url)).sid_refreshed_at > connected.sid_refreshed_at
            and row
        ),
        timeout=45,
        interval=0.5,
        message="the worker to refresh the demo user",
    )

    assert refreshed.sid_status == "connected"
    assert refreshed.sid_refresh_version > connected.sid_refresh_version
    assert simulator.stats()["refreshes"]["ok"] >= 1
    assert simulator.stats()["reuse_detections"] == 0
    new_token = redis_client.get(access_token_key(DEMO_USER))  # type: ignore[attr-defined]
    assert new_token is not None
    assert new_token != first_token
    page = browser.get(f"{origin}/", timeout=10).text
    assert "connected" in page


def test_the_generated_development_settings_load_and_are_fresh_each_time() -> None:
    """`make run`'s first-run .env is a complete configuration with new secrets."""
    from shared import settings

    first, second = stack.development_env(), stack.development_env()

    loaded = settings.load(first)
    assert loaded.is_development
    assert loaded.encryption_keys
    assert stack.uses_simulator(first)
    for name in (
        "SIDTOKENS_SECRET_KEY",
        "SIDTOKENS_ENCRYPTION_KEYS",
        "SID_CLIENT_SECRET",
    ):
        assert first[name] != second[name]


def test_with_real_sid_credentials_the_simulator_is_not_started() -> None:
    """Pointing SID_TOKEN_URL at SID leaves the simulator out of the process list."""
    real = {"SID_TOKEN_URL": "https://auth.sid.ai/oauth/token"}

    assert stack.processes(real) == ["web", "worker", "beat"]
    assert stack.processes(stack.development_env())[0] == "simulator"


def test_the_env_file_round_trips_and_is_private(tmp_path: Path) -> None:
    """The .env written on first run reads back the same and only its owner reads it."""
    path = tmp_path / ".env"
    values = stack.development_env()

    stack.write_env_file(path, values)

    assert stack.read_env_file(path) == values
    assert path.stat().st_mode & 0o777 == 0o600
