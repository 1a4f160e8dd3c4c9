"""No token, code, state, verifier, secret or key in anything the web tier logs.

Everything is captured at DEBUG on the root logger, before any redaction, while a
user connects, a used code is tried again, and the user disconnects. The steps the
test harness itself takes on SID's consent page run with logging turned down,
because the harness's own HTTP library logs the URLs it opens.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis
import sqlalchemy as sa

from shared.crypto import TokenCipher
from shared.settings import Settings
from tests.web.conftest import Browser, query_of, row_of
from web import links
from web.oauth_state import BROWSER_COOKIE, flow_key


def everything_logged(records: list[logging.LogRecord]) -> str:
    """Each record's message, fields and traceback, as one text."""
    formatter = logging.Formatter()
    parts = []
    for record in records:
        parts.append(record.getMessage())
        parts.append(repr(vars(record)))
        if record.exc_info:
            parts.append(formatter.formatException(record.exc_info))
    return "\n".join(parts)


@contextmanager
def harness_quiet(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    with caplog.at_level(logging.CRITICAL):
        yield


def test_a_connect_a_refusal_and_a_disconnect_log_no_secret(
    browser: Browser,
    user_id: str,
    settings: Settings,
    database: sa.Engine,
    redis_client: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every value that could hand over an account is absent from every record."""
    caplog.set_level(logging.DEBUG)
    connect_link = links.connect_url(user_id, settings)
    disconnect_link = links.disconnect_url(user_id, settings)
    authorize = browser.client.get(connect_link).headers["Location"]
    state = query_of(authorize)["state"]
    verifier = json.loads(redis_client.get(flow_key(state)))["verifier"]
    nonce = browser.client.get_cookie(BROWSER_COOKIE, "127.0.0.1", "/api/sid")
    assert nonce is not None
    with harness_quiet(caplog):
        callback = browser.simulator.approve(authorize)
    browser.finish(callback)
    second_state = query_of(browser.start(user_id))["state"]
    code = query_of(callback)["code"]
    browser.client.get(f"{callback.split('?')[0]}?code={code}&state={second_state}")
    row = row_of(database, user_id)
    cipher = TokenCipher(settings.encryption_keys)
    secrets = {
        "access token": cipher.decrypt(row["sid_access_token"]),
        "refresh token": cipher.decrypt(row["sid_refresh_token"]),
        "stored access token": row["sid_access_token"],
        "stored refresh token": row["sid_refresh_token"],
        "code": code,
        "state": state,
        "second state": second_state,
        "verifier": verifier,
        "browser nonce": nonce.value,
        "client secret": settings.client_secret,
        "signing key": settings.secret_key,
        "connect link token": query_of(connect_link)["t"],
        "disconnect link token": query_of(disconnect_link)["t"],
        **{
            f"encryption key {n}": key for n, key in enumerate(settings.encryption_keys)
        },
    }

    browser.client.post(disconnect_link)

    logged = everything_logged(caplog.records)
    assert "connect connected" in logged
    assert "connect provider_refused" in logged
    assert "disconnect disconnected" in logged
    leaked = [name for name, value in secrets.items() if value and value in logged]
    assert leaked == []
