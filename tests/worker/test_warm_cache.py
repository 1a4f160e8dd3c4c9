"""Real workers and beats keep every connected user's token readable from Redis."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest
import redis
import requests
import sqlalchemy as sa

from shared.models import Status
from shared.runtime import Runtime
from shared.token_cache import EVENTS_KEY, access_token_key
from tests.plugins.simulator import Simulator
from tests.worker.fleet import Fleet
from tests.worker.population import connect, rows, sid_user

pytestmark = pytest.mark.slow

TOKEN_LIFETIME = 20
LIFETIMES = 3
USERS = 500


def _ttls(client: redis.Redis, user_ids: list[str]) -> list[tuple[str, int]]:
    """Each user's key's time to live in ms (-2 when the key is missing)."""
    pipe = client.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.pttl(access_token_key(user_id))
    return list(zip(user_ids, pipe.execute(), strict=True))


def _is_accepted(simulator: Simulator, access_token: str) -> bool:
    answer = requests.post(
        simulator.query_url,
        json={"query": "notes"},
        headers={"Authorization": f"Bearer {access_token}"},
        timeout=5,
    )
    return answer.status_code == 200


def _events_of(client: redis.Redis, user_id: str) -> list[str]:
    return [
        fields["event"]
        for _, fields in client.xrange(EVENTS_KEY)
        if fields["user_id"] == user_id
    ]


def _current_tokens(runtime: Runtime) -> set[str]:
    """Every access and refresh token the database holds now, decrypted."""
    with runtime.sessions() as session:
        stored = session.execute(
            sa.text("SELECT sid_access_token, sid_refresh_token FROM users")
        ).all()
    return {runtime.cipher.decrypt(value) for row in stored for value in row if value}


def test_three_workers_and_two_beats_keep_every_token_readable_and_used_once(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
    redis_client: redis.Redis,
) -> None:
    """500 users, 20 s tokens, rotation without leeway, for three token lifetimes.

    A reader polls every key all along: none is ever missing, and a sampled
    token is accepted by SID. SID sees each refresh token presented once, so no
    reuse is detected and no family revoked. A user revoked at SID halfway
    through ends needs_reconnect, key deleted, one event, after one request.
    """
    simulator.configure(access_token_ttl=TOKEN_LIFETIME, rotation=True, leeway=0)
    processes = fleet(make_env(simulator, SIDTOKENS_TOKEN_RATE_LIMIT="300"))
    for name in ("w1", "w2", "w3"):
        processes.worker(name, wait=False)
    processes.beat("beat1")
    processes.beat("beat2")
    processes.wait_ready("w1", "w2", "w3")
    user_ids = connect(simulator, runtime, USERS)
    revoked, watched = user_ids[-1], user_ids[:-1]
    rng = random.Random(7)
    started = time.monotonic()
    revoke_at: float | None = started + TOKEN_LIFETIME
    reads = 0

    while time.monotonic() < started + LIFETIMES * TOKEN_LIFETIME:
        for user_id, ttl in _ttls(redis_client, watched):
            assert ttl > 0, f"user {user_id}'s key was missing at read {reads}"
        token = redis_client.get(access_token_key(rng.choice(watched)))
        assert token is not None
        assert _is_accepted(simulator, token)
        if revoke_at is not None and time.monotonic() >= revoke_at:
            simulator.revoke_user(sid_user(revoked))
            revoke_at = None
        reads += 1
        time.sleep(0.2)

    stats = simulator.stats()
    state = rows(runtime)
    assert stats["refreshes"]["ok"] >= 2 * len(watched), processes.output()
    assert stats["reuse_detections"] == 0
    assert stats["families_revoked"] == 1, "only the revoked user's family"
    assert stats["refresh_token_uses"]["max"] == 1
    assert stats["refreshes"]["invalid_grant"] == 1
    assert all(state[u].sid_status == Status.CONNECTED for u in watched)
    assert state[revoked].sid_status == Status.NEEDS_RECONNECT
    assert redis_client.exists(access_token_key(revoked)) == 0
    assert _events_of(redis_client, revoked) == ["needs_reconnect"]
    for name in ("w1", "w2", "w3"):
        assert "refresh ok" in processes.children[name].output(), name
    for name in ("beat1", "beat2"):
        assert "Sending due task" in processes.children[name].output(), name
    logs = processes.output()
    assert not [token for token in _current_tokens(runtime) if token in logs]
