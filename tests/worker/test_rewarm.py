"""Re-warming Redis from PostgreSQL after a loss, without calling SID."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
import redis
import sqlalchemy as sa

from shared.runtime import Runtime
from shared.token_cache import access_token_key
from tests.plugins.simulator import Simulator
from tests.support import run_sidtokens, wait_for
from tests.worker.fleet import Fleet
from tests.worker.population import connect, rows
from worker import rewarm as rewarm_module
from worker.rewarm import rewarm

REWARM_PERIOD = 5


def _keys(client: redis.Redis, user_ids: list[str]) -> list[str | None]:
    return list(client.mget([access_token_key(u) for u in user_ids]))


def test_a_rewarm_publishes_missing_tokens_and_makes_stale_ones_due(
    simulator: Simulator,
    runtime: Runtime,
    redis_client: redis.Redis,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Missing keys come back from the database; nearly expired tokens become due."""
    monkeypatch.setattr(rewarm_module, "PAGE_SIZE", 2)
    user_ids = connect(simulator, runtime, 5)
    before = _keys(redis_client, user_ids)
    redis_client.delete(*(access_token_key(u) for u in user_ids[:3]))
    with runtime.sessions.begin() as session:
        session.execute(
            sa.text(
                "UPDATE users SET sid_expires_at = now() + interval '2 seconds' "
                "WHERE id = :id"
            ),
            {"id": user_ids[0]},
        )
    simulator.reset_stats()

    report = rewarm(runtime)

    after = _keys(redis_client, user_ids)
    assert (report.checked, report.missing, report.published) == (5, 3, 2)
    assert report.made_due == 1
    assert after[0] is None
    assert after[1:] == before[1:]
    assert (
        rows(runtime)[user_ids[0]].sid_refresh_at
        <= rows(runtime)[user_ids[1]].sid_refresh_at
    )
    assert simulator.stats()["token_requests"] == 0


def test_sidtokens_rewarm_republishes_from_the_command_line(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    redis_client: redis.Redis,
) -> None:
    """The operator command re-warms and says what it did, printing no token."""
    user_ids = connect(simulator, runtime, 3)
    tokens = _keys(redis_client, user_ids)
    redis_client.delete(access_token_key(user_ids[1]))

    done = run_sidtokens("rewarm", env=make_env(simulator))

    assert done.returncode == 0, done.stderr
    assert "1 missing from Redis, 1 published" in done.stdout
    assert _keys(redis_client, user_ids) == tokens
    assert not any(token and token in done.stdout + done.stderr for token in tokens)


@pytest.mark.slow
def test_a_flushed_redis_is_rewarmed_within_one_period_without_sid(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
    redis_client: redis.Redis,
) -> None:
    """FLUSHDB under read load: every key returns, and SID sees no request."""
    env = make_env(simulator, SIDTOKENS_REWARM_INTERVAL_SECONDS=str(REWARM_PERIOD))
    processes = fleet(env)
    processes.worker("w1")
    processes.beat("beat")
    user_ids = connect(simulator, runtime, 300)
    tokens = _keys(redis_client, user_ids)
    simulator.reset_stats()
    stop = threading.Event()

    def read_load() -> None:
        while not stop.is_set():
            _keys(redis_client, user_ids)

    reader = threading.Thread(target=read_load)
    reader.start()
    try:
        redis_client.flushdb()
        flushed_at = time.monotonic()
        wait_for(
            lambda: _keys(redis_client, user_ids) == tokens,
            timeout=REWARM_PERIOD * 3,
            message="every key to be republished",
        )
        back_after = time.monotonic() - flushed_at
    finally:
        stop.set()
        reader.join()

    assert back_after <= REWARM_PERIOD, processes.output()
    assert simulator.stats()["token_requests"] == 0
