"""Probes, metrics, the headers on every page, and the demo page."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import redis
import sqlalchemy as sa
from flask import Flask
from flask.testing import FlaskClient

from shared.crypto import TokenCipher
from shared.settings import Settings
from tests.plugins.simulator import Simulator
from tests.support import free_port
from tests.web.conftest import Browser, forget_user, row_of
from web import create_app, links
from web.demo import DEMO_USER_IDS


def test_healthz_answers_while_the_process_is_up(client: FlaskClient) -> None:
    """Liveness needs nothing but the process."""
    response = client.get("/healthz")

    assert response.status_code == 200


def test_readyz_answers_when_database_and_redis_do(client: FlaskClient) -> None:
    """Both dependencies reachable: 200 with each named."""
    response = client.get("/readyz")

    assert response.status_code == 200
    assert response.json == {"database": "ok", "redis": "ok"}


@pytest.mark.parametrize(
    ("variable", "url", "failing"),
    [
        pytest.param(
            "DATABASE_URL",
            "postgresql+psycopg://postgres@127.0.0.1:{port}/nowhere",
            "database",
            id="database",
        ),
        pytest.param("REDIS_URL", "redis://127.0.0.1:{port}/0", "redis", id="redis"),
    ],
)
def test_readyz_names_what_does_not_answer(
    make_settings: Callable[..., Settings], variable: str, url: str, failing: str
) -> None:
    """A closed port behind either dependency: 503 naming it."""
    settings = make_settings(**{variable: url.format(port=free_port())})
    client = create_app(settings).test_client()

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json is not None
    assert response.json[failing] == "unreachable"
    assert set(response.json.values()) == {"ok", "unreachable"}


def test_metrics_count_connects_and_cache_writes(
    browser: Browser, user_id: str
) -> None:
    """After a connect, both series are exported in Prometheus text format."""
    browser.connect(user_id)

    response = browser.client.get("/metrics")

    assert response.status_code == 200
    assert 'sidtokens_connects_total{outcome="connected"}' in response.text
    assert 'sidtokens_cache_writes_total{source="connect"}' in response.text


def test_metrics_need_the_status_token_when_one_is_set(
    make_settings: Callable[..., Settings],
) -> None:
    """With SIDTOKENS_STATUS_TOKEN set, a scraper must present it as a bearer."""
    client = create_app(make_settings(SIDTOKENS_STATUS_TOKEN="scrape-me")).test_client()

    refused = client.get("/metrics")
    allowed = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})

    assert refused.status_code == 401
    assert allowed.status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        pytest.param("/api/sid/connect", id="error-page"),
        pytest.param("/api/sid/callback?state=unknown", id="callback"),
        pytest.param("/nowhere", id="not-found"),
        pytest.param("/healthz", id="probe"),
    ],
)
def test_every_response_carries_the_protective_headers(
    client: FlaskClient, path: str
) -> None:
    """CSP, nosniff, no referrer, no framing, no caching."""
    response = client.get(path)

    headers = response.headers
    assert headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Cache-Control"] == "no-store"


def test_the_redirect_to_sid_carries_no_store_and_no_referrer(
    browser: Browser, user_id: str
) -> None:
    """The hop that carries the state is never cached and never leaks a Referer."""
    response = browser.client.get(links.connect_url(user_id, browser.settings))

    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"


def test_without_demo_mode_the_root_is_not_found(client: FlaskClient) -> None:
    """Production serves nothing at /."""
    response = client.get("/")

    assert response.status_code == 404


@pytest.fixture
def demo_settings(
    make_settings: Callable[..., Settings],
    database: sa.Engine,
    redis_client: redis.Redis,
) -> Iterator[Settings]:
    """Demo mode on; the demo users it creates are removed afterwards."""
    with database.connect() as connection:
        existing = set(
            connection.scalars(
                sa.text("SELECT id::text FROM users WHERE id = ANY(:ids)"),
                {"ids": [int(user_id) for user_id in DEMO_USER_IDS]},
            )
        )
    yield make_settings(SIDTOKENS_DEMO="1", SIDTOKENS_AFTER_CONNECT_URL="/")
    for user_id in set(DEMO_USER_IDS) - existing:
        forget_user(database, redis_client, user_id)


def test_the_demo_page_lists_users_with_links_and_never_a_token(
    demo_settings: Settings, simulator: Simulator, database: sa.Engine
) -> None:
    """Users 1 to 5 exist; a connected one shows its status but not its token."""
    browser = Browser(create_app(demo_settings).test_client(), simulator, demo_settings)
    assert browser.client.get("/").status_code == 200
    landing = browser.connect("1")
    cipher = TokenCipher(demo_settings.encryption_keys)
    row = row_of(database, "1")

    page = browser.client.get(landing.headers["Location"])

    assert landing.headers["Location"] == "/?sid=connected"
    assert page.status_code == 200
    assert "Connected: the access token is now in Redis." in page.text
    for user_id in DEMO_USER_IDS:
        assert f'data-user="{user_id}"' in page.text
    assert "/api/sid/connect?t=" in page.text
    assert "/api/sid/disconnect?t=" in page.text
    assert cipher.decrypt(row["sid_access_token"]) not in page.text
    assert cipher.decrypt(row["sid_refresh_token"]) not in page.text
    assert "fernet:" not in page.text


def test_flasks_config_holds_no_secret(app: Flask, settings: Settings) -> None:
    """Links are signed from the settings, so Config's repr has nothing to leak."""
    shown = repr(app.config)

    assert app.config["SECRET_KEY"] is None
    assert settings.secret_key not in shown
    assert all(key not in shown for key in settings.encryption_keys)


def test_the_demo_query_button_asks_sid_with_the_warm_token(
    demo_settings: Settings, simulator: Simulator
) -> None:
    """Query SID reads the token from Redis and shows SID's results, no refresh."""
    browser = Browser(create_app(demo_settings).test_client(), simulator, demo_settings)
    browser.client.get("/")
    browser.connect("2")
    simulator.reset_stats()

    page = browser.client.post("/demo/query/2", data={"query": "flight to Lisbon"})

    assert page.status_code == 200
    assert "SID's answer for user 2" in page.text
    assert "Re: flight to Lisbon" in page.text
    assert simulator.stats()["token_requests"] == 0


def test_the_demo_query_for_an_unconnected_user_says_to_connect(
    demo_settings: Settings, simulator: Simulator
) -> None:
    """A user without tokens gets a plain sentence, not an error page."""
    client = create_app(demo_settings).test_client()
    client.get("/")

    page = client.post("/demo/query/3", data={"query": "anything"})

    assert page.status_code == 200
    assert "must connect to SID again" in page.text
