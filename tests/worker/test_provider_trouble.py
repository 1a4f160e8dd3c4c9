"""Real workers meeting a failing or rate-limiting SID."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from shared.models import Status
from shared.runtime import Runtime
from tests.plugins.simulator import Simulator
from tests.support import wait_for
from tests.worker.fleet import Fleet
from tests.worker.population import connect, make_due, rows

pytestmark = pytest.mark.slow

FAULT_WINDOW = 6.0


def _all_refreshed(runtime: Runtime, before: dict[str, object]) -> bool:
    state = rows(runtime)
    return all(
        state[u].sid_refreshed_at != before[u]
        and state[u].sid_status == Status.CONNECTED
        for u in before
    )


def test_errors_timeouts_and_garbled_answers_are_retried_with_backoff(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
) -> None:
    """While every answer fails, each user is tried a handful of times, not per scan.

    Without backoff a 1 s scan would try each user six times in the six-second
    window; with it the attempts come after about 1, 2 and 4 seconds. Once SID
    recovers, every user is refreshed and none was refused.
    """
    processes = fleet(make_env(simulator, SIDTOKENS_HTTP_TIMEOUT_SECONDS="1"))
    processes.worker("w1")
    user_ids = connect(simulator, runtime, 12)
    before = {u: rows(runtime)[u].sid_refreshed_at for u in user_ids}
    simulator.set_faults(
        error_rate=0.34,
        malformed_rate=0.33,
        timeout_rate=0.33,
        timeout_hold_seconds=2,
    )
    simulator.reset_stats()
    make_due(runtime)
    processes.beat("beat")
    wait_for(
        lambda: simulator.stats()["token_requests"] >= len(user_ids),
        timeout=30,
        message="every user to be tried once",
    )
    time.sleep(FAULT_WINDOW)

    during = simulator.stats()["token_requests"]
    errors = {row.sid_last_error.split()[0] for row in rows(runtime).values()}
    simulator.clear_faults()
    wait_for(
        lambda: _all_refreshed(runtime, before),
        timeout=30,
        message="every user to be refreshed after SID recovered",
    )

    stats = simulator.stats()
    assert 2 * len(user_ids) <= during <= 5 * len(user_ids), processes.output()
    assert errors <= {"unavailable", "malformed"}
    assert stats["refreshes"]["invalid_grant"] == 0
    assert stats["refresh_token_uses"]["max"] == 1
    assert all(row.sid_refresh_attempts == 0 for row in rows(runtime).values())


def test_a_429_pauses_every_worker_until_the_reset(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
) -> None:
    """SID allows 10 a second; after each 429 all workers wait for the next second.

    Workers that ignored the 429 would try every remaining user at once and
    collect far more 429s than refreshes; pausing keeps the 429s to the few
    requests already in flight when the first one came back.
    """
    processes = fleet(make_env(simulator, SIDTOKENS_WORKER_CONCURRENCY="4"))
    processes.worker("w1", wait=False)
    processes.worker("w2", wait=False)
    processes.wait_ready("w1", "w2")
    user_ids = connect(simulator, runtime, 50)
    before = {u: rows(runtime)[u].sid_refreshed_at for u in user_ids}
    simulator.set_faults(rate_limit_per_second=10)
    simulator.reset_stats()
    make_due(runtime)
    processes.beat("beat")

    wait_for(
        lambda: _all_refreshed(runtime, before),
        timeout=40,
        message="every user to be refreshed through the rate limit",
    )

    stats = simulator.stats()
    assert stats["rate_limited"] > 0, "SID never limited the workers"
    assert stats["rate_limited"] <= stats["refreshes"]["ok"], processes.output()
    assert stats["refresh_token_uses"]["max"] == 1
    assert "refresh rate_limited" in processes.output()
