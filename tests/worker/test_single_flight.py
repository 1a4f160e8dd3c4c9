"""One refresh at a time per user, across many workers, two beats and crashes."""

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


def _refreshed(simulator: Simulator) -> int:
    ok: int = simulator.stats()["refreshes"]["ok"]
    return ok


def _in_flight(simulator: Simulator) -> int:
    """Refresh requests SID has received but not yet answered (or dropped)."""
    stats = simulator.stats()
    answered = sum(stats["refreshes"].values())
    waiting: int = stats["faults_injected"]["latency"] - answered
    return waiting


def test_a_worker_killed_mid_refresh_loses_no_user(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
) -> None:
    """After a SIGKILL, every user the dead worker held is refreshed by another.

    SID's one-second latency makes the kill land while requests are in flight.
    The simulator drops a request whose client hung up during that latency, so
    none of those rotated. A kill in the few milliseconds between SID answering
    and the answer being stored would lose the rotated token; SID's reuse leeway
    covers that window, which no client can close, and the test allows for it
    without ever seeing a reuse detection.
    """
    simulator.configure(leeway=30)
    user_ids = connect(simulator, runtime, 40)
    simulator.set_faults(latency_ms=1000)
    make_due(runtime)
    started = {u: rows(runtime)[u].sid_refreshed_at for u in user_ids}
    env = make_env(simulator, SIDTOKENS_REFRESH_LEASE_SECONDS="6")
    processes = fleet(env)
    processes.beat("beat")
    victim = processes.worker("victim", SIDTOKENS_WORKER_CONCURRENCY="4")
    wait_for(
        lambda: _refreshed(simulator) >= 4 and _in_flight(simulator) >= 2,
        timeout=30,
        message="the victim to be mid-way through its refreshes",
    )

    victim.kill()
    killed_at = time.monotonic()
    cut_off = _in_flight(simulator)
    survivor = processes.worker("survivor")
    wait_for(
        lambda: all(
            (row := rows(runtime)[u]).sid_refreshed_at != started[u]
            and row.sid_status == Status.CONNECTED
            for u in user_ids
        ),
        timeout=45,
        message="every user to be refreshed after the kill",
    )

    stats = simulator.stats()
    assert cut_off >= 1, "the kill landed between requests"
    assert stats["reuse_detections"] == 0, processes.output()
    assert stats["families_revoked"] == 0
    assert stats["leeway_reuses"] <= 4
    assert stats["refreshes"]["ok"] == len(user_ids) + stats["leeway_reuses"]
    assert "refresh ok" in survivor.output()
    assert time.monotonic() - killed_at < 45
