"""The application reader: Redis first, on-demand refresh when missing, one retry."""

from __future__ import annotations

import pytest

from shared.reader import NotConnected, SidReader
from shared.runtime import Runtime
from shared.token_cache import access_token_key
from tests.plugins.simulator import Simulator
from tests.worker.population import add_rows, connect
from worker.on_demand import refresh_user


def _reader(runtime: Runtime, simulator: Simulator, calls: list[bool]) -> SidReader:
    """A reader refreshing through the worker's path, counting each call."""

    def refresh(user_id: str, force: bool) -> str | None:
        calls.append(force)
        return refresh_user(runtime, user_id, wait=5, force=force).access_token

    return SidReader(runtime.cache.client, simulator.query_url, refresh)


def test_a_warm_token_answers_the_query_without_calling_the_token_endpoint(
    simulator: Simulator, runtime: Runtime
) -> None:
    """The usual path: one GET in Redis, one query, no refresh."""
    [user_id] = connect(simulator, runtime, 1)
    simulator.reset_stats()
    calls: list[bool] = []

    result = _reader(runtime, simulator, calls).query(user_id, "quarterly planning")

    assert result["results"]
    assert calls == []
    assert simulator.stats()["token_requests"] == 0


def test_a_missing_key_is_filled_by_an_on_demand_refresh(
    simulator: Simulator, runtime: Runtime
) -> None:
    """With the key gone the reader asks for the token once and queries with it."""
    [user_id] = connect(simulator, runtime, 1)
    runtime.cache.client.delete(access_token_key(user_id))
    calls: list[bool] = []

    result = _reader(runtime, simulator, calls).query(user_id, "flight")

    assert result["results"]
    assert calls == [False]


def test_a_401_forces_one_refresh_and_one_retry(
    simulator: Simulator, runtime: Runtime
) -> None:
    """A token SID no longer takes is replaced by a forced refresh, then it works."""
    [user_id] = connect(simulator, runtime, 1)
    runtime.cache.client.set(access_token_key(user_id), "sim_at_not-a-real-token")
    simulator.reset_stats()
    calls: list[bool] = []

    result = _reader(runtime, simulator, calls).query(user_id, "reading list")

    assert result["results"]
    assert calls == [True]
    assert simulator.stats()["token_requests"] == 1


def test_a_user_without_tokens_must_reconnect(
    simulator: Simulator, runtime: Runtime
) -> None:
    """A user who never connected gets NotConnected, not a query with no token."""
    add_rows(runtime, ["77"])

    with pytest.raises(NotConnected):
        _reader(runtime, simulator, []).query("77", "anything")
