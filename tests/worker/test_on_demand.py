"""Refreshing one user now, through the same single-flight path as the workers."""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
import requests
import sqlalchemy as sa

from shared.oauth import SidClient
from shared.runtime import Runtime
from shared.token_cache import access_token_key
from shared.users import UnknownUser
from tests.plugins.simulator import Simulator
from tests.worker.population import add_rows, connect
from worker import claims, refresh_now
from worker.failures import Outcome
from worker.on_demand import refresh_user
from worker.refresh import refresh_claimed


def _own_client(runtime: Runtime) -> Runtime:
    """The runtime with an HTTP session of its own, for use in another thread."""
    client = SidClient(runtime.settings, session=requests.Session())
    return dataclasses.replace(runtime, client=client)


def _stored_access_token(runtime: Runtime, user_id: str) -> str:
    with runtime.sessions() as session:
        stored = session.scalar(
            sa.text("SELECT sid_access_token FROM users WHERE id = :id"),
            {"id": user_id},
        )
    assert stored is not None
    return runtime.cipher.decrypt(stored)


def test_refresh_now_returns_a_fresh_token_and_publishes_it(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    process_env: Callable[[dict[str, str]], None],
    redis_client: redis.Redis,
) -> None:
    """An application asking for a forced refresh gets the new token back."""
    [user_id] = connect(simulator, runtime, 1)
    old = redis_client.get(access_token_key(user_id))
    process_env(make_env(simulator))

    token = refresh_now(user_id, wait=5, force=True)

    assert token is not None
    assert token != old
    assert redis_client.get(access_token_key(user_id)) == token


def test_a_still_valid_stored_token_is_served_without_calling_sid(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    process_env: Callable[[dict[str, str]], None],
    redis_client: redis.Redis,
) -> None:
    """A missing key with a good token in the database is a lost cache: republish."""
    [user_id] = connect(simulator, runtime, 1)
    redis_client.delete(access_token_key(user_id))
    simulator.reset_stats()
    process_env(make_env(simulator))

    token = refresh_now(user_id, wait=5)

    assert token == _stored_access_token(runtime, user_id)
    assert redis_client.get(access_token_key(user_id)) == token
    assert simulator.stats()["token_requests"] == 0


def test_two_concurrent_on_demand_refreshes_make_one_request(
    simulator: Simulator, runtime: Runtime
) -> None:
    """Two callers at once: one calls SID, the other waits for its result."""
    [user_id] = connect(simulator, runtime, 1)
    simulator.set_faults(latency_ms=500)
    simulator.reset_stats()
    barrier = threading.Barrier(2)

    def ask(_: int) -> tuple[Outcome, str | None]:
        mine = _own_client(runtime)
        barrier.wait()
        result = refresh_user(mine, user_id, wait=10, force=True)
        return result.outcome, result.access_token

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(ask, range(2)))

    assert simulator.stats()["token_requests"] == 1
    assert [outcome for outcome, _ in answers] == [Outcome.OK, Outcome.OK]
    assert answers[0][1] == answers[1][1] == _stored_access_token(runtime, user_id)


def test_an_on_demand_refresh_waits_for_a_worker_already_refreshing(
    simulator: Simulator, runtime: Runtime
) -> None:
    """A caller finding a live lease does not call SID; it takes the worker's token."""
    [user_id] = connect(simulator, runtime, 1)
    simulator.set_faults(latency_ms=700)
    simulator.reset_stats()
    claim = claims.claim_user(runtime.sessions, user_id, lease=timedelta(seconds=10))
    assert claim is not None
    worker = threading.Thread(
        target=refresh_claimed, args=(_own_client(runtime), claim)
    )
    worker.start()

    result = refresh_user(runtime, user_id, wait=10, force=True)

    worker.join()
    assert result.outcome is Outcome.OK
    assert result.access_token == _stored_access_token(runtime, user_id)
    assert simulator.stats()["token_requests"] == 1


def test_an_on_demand_refresh_gives_up_after_its_wait(
    simulator: Simulator, runtime: Runtime
) -> None:
    """A lease nobody finishes within the wait yields nothing, and no request."""
    [user_id] = connect(simulator, runtime, 1)
    claims.claim_user(runtime.sessions, user_id, lease=timedelta(seconds=30))
    simulator.reset_stats()

    result = refresh_user(runtime, user_id, wait=0.3, force=True)

    assert result.outcome is Outcome.DEFERRED
    assert result.access_token is None
    assert simulator.stats()["token_requests"] == 0


def test_a_user_that_is_not_connected_gets_no_token(runtime: Runtime) -> None:
    """A never-connected user has nothing to refresh."""
    add_rows(runtime, ["7"])

    result = refresh_user(runtime, "7", wait=1)

    assert result.outcome is Outcome.SKIPPED
    assert result.access_token is None


def test_an_unknown_user_is_reported(runtime: Runtime) -> None:
    """An id with no row raises UnknownUser, naming the id."""
    with pytest.raises(UnknownUser, match="'404'"):
        refresh_user(runtime, "404", wait=1)
