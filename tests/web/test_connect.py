"""The connect flow that works: redirect to SID, callback, stored and published."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Callable
from datetime import UTC, datetime

import redis
import sqlalchemy as sa
from flask.testing import FlaskClient

from shared.crypto import TokenCipher
from shared.settings import Settings
from shared.token_cache import TokenCache, access_token_key
from tests.plugins.simulator import Simulator
from tests.support import free_port
from tests.web.conftest import Browser, Snapshot, events_of, query_of, row_of
from web import create_app, handles, links
from web.oauth_state import BROWSER_COOKIE, flow_key


def test_connect_redirects_to_sids_authorize_url_with_every_parameter(
    make_settings: Callable[..., Settings], user_id: str, simulator: Simulator
) -> None:
    """response_type, client, redirect URI, scope, state, S256 challenge, audience."""
    settings = make_settings(
        SID_AUDIENCE="https://api.sid.ai/api/v1/",
        SIDTOKENS_AUTHORIZE_EXTRA_PARAMS="prompt=consent",
    )
    client = create_app(settings).test_client()

    response = client.get(links.connect_url(user_id, settings))

    assert response.status_code == 302
    location = response.headers["Location"]
    assert location.startswith(simulator.authorize_url + "?")
    params = query_of(location)
    assert params["response_type"] == "code"
    assert params["client_id"] == simulator.client_id
    assert params["redirect_uri"] == simulator.redirect_uri
    assert params["scope"] == "query:data offline_access"
    assert len(params["state"]) >= 43
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert params["audience"] == "https://api.sid.ai/api/v1/"
    assert params["prompt"] == "consent"


def test_each_connect_gets_its_own_state_and_challenge(
    browser: Browser, user_id: str
) -> None:
    """Two clicks make two flows; neither value repeats."""
    first = query_of(browser.start(user_id))

    second = query_of(browser.start(user_id))

    assert first["state"] != second["state"]
    assert first["code_challenge"] != second["code_challenge"]


def test_the_flow_is_kept_under_a_digest_of_the_state_with_an_expiry(
    browser: Browser, user_id: str, redis_client: redis.Redis, settings: Settings
) -> None:
    """Redis holds user, browser digest and verifier; the raw state is not a key."""
    state = query_of(browser.start(user_id))["state"]

    key = flow_key(state)
    record = json.loads(redis_client.get(key))
    assert key == f"sid:oauth_flow:{hashlib.sha256(state.encode()).hexdigest()}"
    assert redis_client.keys(f"*{state}*") == []
    assert record["user_id"] == user_id
    assert len(record["verifier"]) >= 43
    assert 0 < redis_client.ttl(key) <= settings.oauth_flow_max_age_seconds


def test_connect_binds_the_browser_with_an_httponly_lax_cookie(
    client: FlaskClient, settings: Settings, user_id: str
) -> None:
    """The nonce cookie is HttpOnly, SameSite=Lax, scoped to /api/sid, not Secure."""
    response = client.get(links.connect_url(user_id, settings))

    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{BROWSER_COOKIE}=")
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Path=/api/sid" in cookie
    assert "Secure" not in cookie


def test_the_browser_cookie_is_secure_when_the_public_url_is_https(
    make_settings: Callable[..., Settings], user_id: str
) -> None:
    """Behind TLS the cookie never travels over plain HTTP."""
    settings = make_settings(
        SID_REDIRECT_URI="https://app.example/api/sid/callback",
        SIDTOKENS_PUBLIC_URL="https://app.example",
    )
    client = create_app(settings).test_client()

    response = client.get(links.connect_url(user_id, settings))

    assert "Secure" in response.headers["Set-Cookie"]


def test_a_callback_stores_encrypted_tokens_and_publishes_the_access_token(
    browser: Browser,
    user_id: str,
    settings: Settings,
    redis_client: redis.Redis,
    database: sa.Engine,
) -> None:
    """Ciphertext at rest, status connected, the key with its margin, one event."""
    before = datetime.now(UTC)

    response = browser.connect(user_id)

    assert response.status_code == 302
    assert response.headers["Location"] == "/account?tab=sid&sid=connected"
    row = row_of(database, user_id)
    assert row["sid_status"] == "connected"
    assert row["sid_access_token"].startswith("fernet:")
    assert row["sid_refresh_token"].startswith("fernet:")
    cipher = TokenCipher(settings.encryption_keys)
    access_token = cipher.decrypt(row["sid_access_token"])
    assert redis_client.get(access_token_key(user_id)) == access_token
    expected_ms = (
        row["sid_expires_at"].timestamp() - settings.cache_margin_seconds
    ) * 1000
    assert abs(redis_client.pexpiretime(access_token_key(user_id)) - expected_ms) < 5
    assert row["sid_expires_at"] > before
    [(_, event)] = events_of(redis_client, user_id)
    assert event["event"] == "connected"


def test_a_reconnect_replaces_the_tokens_in_one_step(
    browser: Browser,
    connected_user: str,
    database: sa.Engine,
    redis_client: redis.Redis,
    settings: Settings,
) -> None:
    """New tokens under a version one higher, and the new access token published."""
    cipher = TokenCipher(settings.encryption_keys)
    before = row_of(database, connected_user)

    response = browser.connect(connected_user, sid_user="dave")

    after = row_of(database, connected_user)
    assert query_of(response.headers["Location"])["sid"] == "connected"
    assert cipher.decrypt(after["sid_refresh_token"]) != cipher.decrypt(
        before["sid_refresh_token"]
    )
    assert after["sid_refresh_version"] == before["sid_refresh_version"] + 1
    new_token = cipher.decrypt(after["sid_access_token"])
    assert redis_client.get(access_token_key(connected_user)) == new_token


def test_the_after_connect_url_without_a_query_gets_one(
    make_settings: Callable[..., Settings], simulator: Simulator, user_id: str
) -> None:
    """``https://app.example/done`` becomes ``https://app.example/done?sid=connected``."""
    settings = make_settings(SIDTOKENS_AFTER_CONNECT_URL="https://app.example/done")
    browser = Browser(create_app(settings).test_client(), simulator, settings)

    response = browser.connect(user_id)

    assert response.headers["Location"] == "https://app.example/done?sid=connected"


def test_a_failed_database_write_shows_a_page_and_publishes_nothing(
    make_settings: Callable[..., Settings],
    simulator: Simulator,
    user_id: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """PostgreSQL down at the callback: 503 page, no key, no event, tokens revoked."""
    settings = make_settings()
    browser = Browser(create_app(settings).test_client(), simulator, settings)
    callback = browser.approve(user_id)
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/nowhere"
    broken = create_app(dataclasses.replace(settings, database_url=closed))
    browser.client.application = broken
    before = storage_of(user_id)
    simulator.reset_stats()

    response = browser.finish(callback)

    assert response.status_code == 503
    assert "We could not finish this right now" in response.text
    assert storage_of(user_id) == before
    assert simulator.stats()["revokes"]["refresh_token"] == 1


def test_a_redis_failure_after_the_commit_still_connects_the_user(
    browser: Browser,
    user_id: str,
    database: sa.Engine,
    redis_client: redis.Redis,
) -> None:
    """The database is the truth: the re-warm publishes the token later."""
    callback = browser.approve(user_id)
    app = browser.client.application
    runtime = app.extensions[handles.RUNTIME]
    unreachable = TokenCache.from_url(
        f"redis://127.0.0.1:{free_port()}/0", margin_seconds=60
    )
    app.extensions[handles.RUNTIME] = dataclasses.replace(runtime, cache=unreachable)

    response = browser.finish(callback)

    assert query_of(response.headers["Location"])["sid"] == "connected"
    assert row_of(database, user_id)["sid_status"] == "connected"
    assert redis_client.get(access_token_key(user_id)) is None
