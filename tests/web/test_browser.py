"""The whole flow in a real browser against real servers, as a user meets it.

The web tier runs as ``flask --app web run`` in a process of its own, the SID
simulator in another, and Debian's headless Chromium clicks through the consent
page. Skipped, not failed, where /usr/bin/chromium is not installed.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
import redis
import sqlalchemy as sa

from shared.crypto import TokenCipher
from shared.token_cache import access_token_key
from tests.web.conftest import (
    CHROMIUM,
    CHROMIUM_ARGS,
    WebServer,
    events_of,
    query_of,
    row_of,
)
from web import links
from web.oauth_state import flow_key

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent"),
]


def test_a_user_connects_and_disconnects_in_a_real_browser(
    web_server: WebServer,
    user_id: str,
    database: sa.Engine,
    redis_client: redis.Redis,
) -> None:
    """Link, consent, callback, demo page, then the disconnect page; nothing leaks."""
    from playwright.sync_api import sync_playwright

    settings = web_server.settings
    requested: list[str] = []
    verifiers: list[str] = []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = chromium.new_page()
        page.on("request", lambda request: requested.append(request.url))
        page.goto(links.connect_url(user_id, settings))
        page.wait_for_selector("#approve")
        state = query_of(page.url)["state"]
        verifiers.append(json.loads(redis_client.get(flow_key(state)))["verifier"])
        page.fill("#user", "alice")
        page.click("#approve")
        page.wait_for_url("**/?sid=connected")
        connected_page = page.content()
        connected_at = datetime.now(UTC)
        row = row_of(database, user_id)
        ttl_ms = redis_client.pttl(access_token_key(user_id))
        page.goto(links.disconnect_url(user_id, settings))
        page.click("button[type=submit]")
        page.wait_for_url("**/?sid=disconnected")
        chromium.close()

    assert "Connected: the access token is now in Redis." in connected_page
    assert row["sid_status"] == "connected"
    assert row["sid_access_token"].startswith("fernet:")
    assert row["sid_refresh_token"].startswith("fernet:")
    cipher = TokenCipher(settings.encryption_keys)
    access_token = cipher.decrypt(row["sid_access_token"])
    refresh_token = cipher.decrypt(row["sid_refresh_token"])
    cached_for = row["sid_expires_at"] - connected_at
    expected_ms = (cached_for.total_seconds() - settings.cache_margin_seconds) * 1000
    assert abs(ttl_ms - expected_ms) < 3000
    events = [event["event"] for _, event in events_of(redis_client, user_id)]
    assert events == ["connected", "disconnected"]
    after = row_of(database, user_id)
    assert after["sid_status"] == "disconnected"
    assert after["sid_refresh_token"] is None
    assert redis_client.get(access_token_key(user_id)) is None
    assert web_server.simulator.refresh(refresh_token).status_code in {400, 403}

    [callback] = [url for url in requested if "/api/sid/callback?" in url]
    secrets = {
        "access token": access_token,
        "refresh token": refresh_token,
        "code": query_of(callback)["code"],
        "state": state,
        "verifier": verifiers[0],
        "client secret": settings.client_secret,
        "signing key": settings.secret_key,
        **{f"key {n}": key for n, key in enumerate(settings.encryption_keys)},
    }
    output = web_server.child.output()
    assert "/api/sid/callback?code=[redacted]&state=[redacted]" in output
    leaked = [name for name, value in secrets.items() if value and value in output]
    assert leaked == []
