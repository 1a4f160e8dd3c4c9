"""Disconnect: revoke at SID first, then clear the row and the key; else nothing."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import redis
import sqlalchemy as sa
from flask.testing import FlaskClient

from shared.crypto import TokenCipher
from shared.errors import StorageError
from shared.runtime import Runtime
from shared.settings import Settings
from shared.token_cache import TokenCache, access_token_key
from tests.plugins.simulator import Simulator
from tests.support import free_port
from tests.web.conftest import Snapshot, events_of, row_of
from web import connection, links

SID_COLUMNS = (
    "sid_access_token",
    "sid_refresh_token",
    "sid_expires_at",
    "sid_refresh_at",
    "sid_lease_until",
)


def _refresh_token(database: sa.Engine, settings: Settings, user_id: str) -> str:
    stored = row_of(database, user_id)["sid_refresh_token"]
    return TokenCipher(settings.encryption_keys).decrypt(stored)


def test_opening_a_disconnect_link_only_asks_for_confirmation(
    client: FlaskClient,
    settings: Settings,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """A GET (a link scanner, a prefetch) changes nothing; the page has a form."""
    before = storage_of(connected_user)

    response = client.get(links.disconnect_url(connected_user, settings))

    assert response.status_code == 200
    assert '<form method="post"' in response.text
    assert storage_of(connected_user) == before


def test_disconnecting_revokes_at_sid_and_clears_the_row_and_the_key(
    client: FlaskClient,
    settings: Settings,
    simulator: Simulator,
    connected_user: str,
    database: sa.Engine,
    redis_client: redis.Redis,
) -> None:
    """Revoked refresh token, empty columns, no key, a disconnected event."""
    refresh_token = _refresh_token(database, settings, connected_user)
    simulator.reset_stats()

    response = client.post(links.disconnect_url(connected_user, settings))

    assert response.status_code == 302
    assert response.headers["Location"] == "/account?tab=sid&sid=disconnected"
    assert simulator.stats()["revokes"]["refresh_token"] == 1
    assert simulator.refresh(refresh_token).status_code in {400, 403}
    row = row_of(database, connected_user)
    assert row["sid_status"] == "disconnected"
    assert all(row[column] is None for column in SID_COLUMNS)
    assert redis_client.get(access_token_key(connected_user)) is None
    events = [event["event"] for _, event in events_of(redis_client, connected_user)]
    assert events == ["connected", "disconnected"]


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"error_rate": 1.0, "apply_to": ["revoke"]}, id="503"),
        pytest.param(
            {"timeout_rate": 1.0, "timeout_hold_seconds": 3, "apply_to": ["revoke"]},
            id="timeout",
        ),
    ],
)
def test_when_sid_cannot_revoke_nothing_changes(
    client: FlaskClient,
    settings: Settings,
    simulator: Simulator,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
    faults: dict[str, object],
) -> None:
    """The user can retry: a 503 page, the connection and the key intact."""
    simulator.set_faults(**faults)
    before = storage_of(connected_user)

    response = client.post(links.disconnect_url(connected_user, settings))

    assert response.status_code == 503
    assert "SID did not confirm the disconnect" in response.text
    assert storage_of(connected_user) == before


def test_a_user_without_tokens_is_just_marked_disconnected(
    client: FlaskClient,
    settings: Settings,
    simulator: Simulator,
    user_id: str,
    database: sa.Engine,
) -> None:
    """Nothing to revoke, so SID is not asked; the status still says disconnected."""
    response = client.post(links.disconnect_url(user_id, settings))

    assert response.status_code == 302
    assert row_of(database, user_id)["sid_status"] == "disconnected"
    assert simulator.stats()["revoke_requests"] == 0


def test_a_connect_link_cannot_disconnect(
    client: FlaskClient,
    settings: Settings,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """The purposes are salted apart: a connect token at /disconnect is forged."""
    connect_link = links.connect_url(connected_user, settings)
    before = storage_of(connected_user)

    response = client.post(connect_link.replace("/connect", "/disconnect"))

    assert response.status_code == 403
    assert storage_of(connected_user) == before


def test_disconnecting_an_unknown_user_gets_a_404_page(
    client: FlaskClient, settings: Settings
) -> None:
    """A valid signature for an id the table does not have."""
    response = client.post(links.disconnect_url("999999999999999998", settings))

    assert response.status_code == 404


def test_a_redis_failure_after_the_commit_is_fixed_by_running_it_again(
    settings: Settings, connected_user: str, redis_client: redis.Redis
) -> None:
    """The row is cleared; the stale key goes on the second, idempotent run."""
    runtime = Runtime.from_settings(settings)
    unreachable = TokenCache.from_url(
        f"redis://127.0.0.1:{free_port()}/0", margin_seconds=60
    )
    with pytest.raises(StorageError, match="disconnect again"):
        connection.disconnect(
            dataclasses.replace(runtime, cache=unreachable), connected_user
        )

    done = connection.disconnect(runtime, connected_user)

    assert done.revoked is False
    assert redis_client.get(access_token_key(connected_user)) is None
