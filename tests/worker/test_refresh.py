"""One refresh, in this process, against the simulator over HTTP and real storage."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

import pytest
import redis
import sqlalchemy as sa

from shared.metrics import REFRESHES
from shared.models import Status
from shared.runtime import Runtime
from shared.token_cache import EVENTS_KEY, access_token_key
from shared.users import fetch_connection, save_connection
from tests.plugins.simulator import Simulator
from tests.worker.population import connect, grant_from, rows, sid_user
from worker import claims
from worker.claims import Claim
from worker.failures import Outcome
from worker.rate_limit import RATE_LIMIT_PAUSE_KEY
from worker.refresh import refresh_claimed

LEASE = timedelta(seconds=10)


def _claim(runtime: Runtime, user_id: str) -> Claim:
    claim = claims.claim_user(runtime.sessions, user_id, lease=LEASE)
    assert claim is not None
    return claim


def _stored(runtime: Runtime, user_id: str) -> tuple[str | None, str | None]:
    with runtime.sessions() as session:
        connection = fetch_connection(session, user_id, runtime.cipher)
    return connection.access_token, connection.refresh_token


def _events(client: redis.Redis, user_id: str) -> list[str]:
    return [
        fields["event"]
        for _, fields in client.xrange(EVENTS_KEY)
        if fields["user_id"] == user_id
    ]


def test_a_refresh_stores_the_rotated_token_and_publishes_the_new_access_token(
    simulator: Simulator, runtime: Runtime, redis_client: redis.Redis
) -> None:
    """A refresh stores the rotated refresh token, then publishes the access token."""
    [user_id] = connect(simulator, runtime, 1)
    old_access, old_refresh = _stored(runtime, user_id)

    result = refresh_claimed(runtime, _claim(runtime, user_id))

    new_access, new_refresh = _stored(runtime, user_id)
    assert result.outcome is Outcome.OK
    assert new_refresh != old_refresh
    assert new_access != old_access
    assert redis_client.get(access_token_key(user_id)) == new_access
    assert rows(runtime)[user_id].sid_lease_until is None
    assert simulator.stats()["refresh_token_uses"]["max"] == 1


def test_a_provider_that_does_not_rotate_keeps_the_refresh_token(
    simulator: Simulator, runtime: Runtime
) -> None:
    """Without rotation SID omits refresh_token, and the old one is kept."""
    simulator.configure(rotation=False)
    [user_id] = connect(simulator, runtime, 1)
    _, old_refresh = _stored(runtime, user_id)

    result = refresh_claimed(runtime, _claim(runtime, user_id))

    assert result.outcome is Outcome.OK
    assert _stored(runtime, user_id)[1] == old_refresh


def test_a_revoked_user_needs_reconnect_after_exactly_one_request(
    simulator: Simulator, runtime: Runtime, redis_client: redis.Redis
) -> None:
    """A refused grant clears the user, deletes the key and appends one event."""
    [user_id] = connect(simulator, runtime, 1)
    simulator.revoke_user(sid_user(user_id))
    simulator.reset_stats()

    result = refresh_claimed(runtime, _claim(runtime, user_id))
    again = claims.claim_user(runtime.sessions, user_id, lease=LEASE)

    row = rows(runtime)[user_id]
    assert result.outcome is Outcome.REFUSED
    assert row.sid_status == Status.NEEDS_RECONNECT
    assert row.sid_last_error == "refused 403 invalid_grant"
    assert _stored(runtime, user_id) == (None, None)
    assert redis_client.exists(access_token_key(user_id)) == 0
    assert _events(redis_client, user_id) == ["needs_reconnect"]
    assert simulator.stats()["token_requests"] == 1
    assert again is None


def test_a_refusal_after_a_concurrent_reconnect_is_a_lost_race(
    simulator: Simulator, runtime: Runtime, redis_client: redis.Redis
) -> None:
    """invalid_grant for a token a reconnect replaced leaves the new tokens alone."""
    [user_id] = connect(simulator, runtime, 1)
    claim = _claim(runtime, user_id)
    simulator.revoke_user(sid_user(user_id))
    fresh = grant_from(simulator.issue_tokens(sid_user(user_id)))

    def reconnect_during_request(refresh_token: str) -> None:
        with runtime.sessions.begin() as session:
            save_connection(
                session,
                user_id,
                fresh,
                cipher=runtime.cipher,
                settings=runtime.settings,
            )
        raise_refusal(refresh_token)

    raise_refusal = runtime.client.refresh
    runtime.client.refresh = reconnect_during_request  # type: ignore[method-assign]

    result = refresh_claimed(runtime, claim)

    assert result.outcome is Outcome.FENCED
    assert rows(runtime)[user_id].sid_status == Status.CONNECTED
    assert _stored(runtime, user_id) == (fresh.access_token, fresh.refresh_token)
    assert _events(redis_client, user_id) == []


def test_a_stale_claim_never_reaches_sid(
    simulator: Simulator, runtime: Runtime
) -> None:
    """A claim whose version moved on is skipped without a request."""
    [user_id] = connect(simulator, runtime, 1)
    stale = _claim(runtime, user_id)
    claims.put_back(runtime.sessions, stale, delay=timedelta(0))
    _claim(runtime, user_id)
    simulator.reset_stats()

    result = refresh_claimed(runtime, stale)

    assert result.outcome is Outcome.SKIPPED
    assert simulator.stats()["token_requests"] == 0


def test_a_claim_delivered_twice_starts_once(
    simulator: Simulator, runtime: Runtime
) -> None:
    """The second delivery of the same claim finds its start fence closed."""
    [user_id] = connect(simulator, runtime, 1)
    claim = _claim(runtime, user_id)
    simulator.reset_stats()

    first = refresh_claimed(runtime, claim)
    second = refresh_claimed(runtime, claim)

    assert (first.outcome, second.outcome) == (Outcome.OK, Outcome.SKIPPED)
    assert simulator.stats()["token_requests"] == 1


@pytest.mark.parametrize(
    ("faults", "outcome", "reason"),
    [
        (
            {"error_rate": 1.0},
            Outcome.UNAVAILABLE,
            "unavailable 503 temporarily_unavailable",
        ),
        ({"malformed_rate": 1.0}, Outcome.MALFORMED, "malformed 200"),
        (
            {"timeout_rate": 1.0, "timeout_hold_seconds": 5},
            Outcome.UNAVAILABLE,
            "unavailable ReadTimeout",
        ),
    ],
    ids=["server-error", "malformed-answer", "timeout"],
)
def test_a_transient_failure_is_retried_later_with_the_token_kept(
    simulator: Simulator,
    make_runtime: Callable[..., Runtime],
    redis_client: redis.Redis,
    faults: dict[str, object],
    outcome: Outcome,
    reason: str,
) -> None:
    """5xx, malformed answers and timeouts put the user back with a backoff."""
    runtime = make_runtime(simulator, SIDTOKENS_HTTP_TIMEOUT_SECONDS="0.5")
    [user_id] = connect(simulator, runtime, 1)
    published = redis_client.get(access_token_key(user_id))
    simulator.set_faults(**faults)

    result = refresh_claimed(runtime, _claim(runtime, user_id))

    row = rows(runtime)[user_id]
    assert result.outcome is outcome
    assert row.sid_refresh_attempts == 1
    assert row.sid_last_error == reason
    assert row.sid_lease_until is None
    assert result.retry_in is not None
    assert timedelta(seconds=0.5) <= result.retry_in <= timedelta(seconds=1)
    assert redis_client.get(access_token_key(user_id)) == published


def test_a_429_pauses_every_worker_until_its_reset(
    simulator: Simulator, runtime: Runtime, redis_client: redis.Redis
) -> None:
    """A 429 sets the shared pause; the next claim is put back without a request."""
    first, second = connect(simulator, runtime, 2)
    simulator.set_faults(
        rate_limit_per_second=0.01, rate_limit_burst=1, retry_after=True
    )
    simulator.refresh("exhaust-the-bucket")
    simulator.reset_stats()

    limited = refresh_claimed(runtime, _claim(runtime, first))
    deferred = refresh_claimed(runtime, _claim(runtime, second))

    assert limited.outcome is Outcome.RATE_LIMITED
    assert deferred.outcome is Outcome.DEFERRED
    assert redis_client.pttl(RATE_LIMIT_PAUSE_KEY) > 0
    assert simulator.stats()["token_requests"] == 1
    assert rows(runtime)[first].sid_refresh_attempts == 0


def test_a_rejected_client_pauses_its_workers_and_is_logged_loudly(
    simulator: Simulator,
    make_runtime: Callable[..., Runtime],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A wrong client secret is an operator error: one request, then a pause."""
    good = make_runtime(simulator)
    user_ids = connect(simulator, good, 3)
    wrong = make_runtime(simulator, SID_CLIENT_SECRET="not-the-secret")
    simulator.reset_stats()

    with caplog.at_level(logging.INFO, logger="sidtokens.worker"):
        results = [refresh_claimed(wrong, _claim(wrong, u)) for u in user_ids]

    assert [r.outcome for r in results] == [
        Outcome.MISCONFIGURED,
        Outcome.DEFERRED,
        Outcome.DEFERRED,
    ]
    assert simulator.stats()["token_requests"] == 1
    assert rows(good)[user_ids[0]].sid_last_error == "misconfigured 401 access_denied"
    assert rows(good)[user_ids[0]].sid_status == Status.CONNECTED
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "SID_CLIENT_SECRET" in errors[0].__dict__["detail"]


def test_a_refresh_logs_one_line_with_its_fields_and_no_token(
    simulator: Simulator, runtime: Runtime, caplog: pytest.LogCaptureFixture
) -> None:
    """The log line names user, outcome, attempt, duration and expiry, not tokens."""
    [user_id] = connect(simulator, runtime, 1)
    old_access, old_refresh = _stored(runtime, user_id)

    with caplog.at_level(logging.DEBUG):
        refresh_claimed(runtime, _claim(runtime, user_id))

    new_access, new_refresh = _stored(runtime, user_id)
    lines = [r for r in caplog.records if r.name == "sidtokens.worker"]
    assert len(lines) == 1
    assert lines[0].__dict__["user_id"] == user_id
    assert lines[0].__dict__["outcome"] == "ok"
    assert lines[0].__dict__["attempt"] == 1
    assert isinstance(lines[0].__dict__["duration_ms"], int)
    assert lines[0].__dict__["expires_at"]
    everything = caplog.text + "".join(str(r.__dict__) for r in caplog.records)
    for token in (old_access, old_refresh, new_access, new_refresh):
        assert token is not None
        assert token not in everything


def test_refreshes_are_counted_by_outcome(
    simulator: Simulator, runtime: Runtime
) -> None:
    """sidtokens_refreshes_total grows by one per refresh, labelled by outcome."""
    [user_id] = connect(simulator, runtime, 1)
    before = REFRESHES.labels("ok")._value.get()

    refresh_claimed(runtime, _claim(runtime, user_id))

    assert REFRESHES.labels("ok")._value.get() == before + 1


def test_a_user_without_a_stored_refresh_token_needs_reconnect_without_a_request(
    simulator: Simulator, runtime: Runtime
) -> None:
    """A connected row with no refresh token cannot be refreshed: reconnect."""
    [user_id] = connect(simulator, runtime, 1)
    with runtime.sessions.begin() as session:
        session.execute(sa.text("UPDATE users SET sid_refresh_token = NULL"))
    simulator.reset_stats()

    result = refresh_claimed(runtime, _claim(runtime, user_id))

    assert result.outcome is Outcome.REFUSED
    assert simulator.stats()["token_requests"] == 0
