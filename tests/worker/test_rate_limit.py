"""The shared rate limit and pauses, straight against Redis."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import redis

from shared.settings import Settings, load
from worker.rate_limit import (
    CLIENT_PAUSE_FIRST,
    RATE_LIMIT_PAUSE_KEY,
    RateLimit,
    client_fingerprint,
)


def _settings(base_env: dict[str, str], **overrides: str) -> Settings:
    env = {**base_env, "SIDTOKENS_SCAN_INTERVAL_SECONDS": "1", **overrides}
    return load(env)


def _limit(redis_url: str, settings: Settings) -> RateLimit:
    return RateLimit(redis.Redis.from_url(redis_url), settings)


def test_a_burst_of_requests_is_spread_at_the_configured_rate(
    base_env: dict[str, str], redis_url: str
) -> None:
    """Twenty slots at 20/s: a small burst at once, then one slot per 50 ms."""
    limit = _limit(redis_url, _settings(base_env, SIDTOKENS_TOKEN_RATE_LIMIT="20"))

    waits = [limit.reserve(timedelta(seconds=2)).wait for _ in range(20)]

    assert waits[:5] == [timedelta(0)] * 5
    assert timedelta(milliseconds=600) <= waits[-1] <= timedelta(milliseconds=750)
    assert waits == sorted(waits)


def test_a_slot_too_far_away_is_refused_with_the_time_to_wait(
    base_env: dict[str, str], redis_url: str
) -> None:
    """A caller is not made to wait longer than it allows; it learns how long."""
    limit = _limit(redis_url, _settings(base_env, SIDTOKENS_TOKEN_RATE_LIMIT="10"))
    for _ in range(12):
        limit.reserve(timedelta(seconds=1))

    admission = limit.reserve(timedelta(milliseconds=100))

    assert not admission.granted
    assert not admission.paused
    assert admission.wait > timedelta(milliseconds=100)


def test_workers_share_one_limit(base_env: dict[str, str], redis_url: str) -> None:
    """Two limiters (two workers) draw on the same bucket."""
    settings = _settings(base_env, SIDTOKENS_TOKEN_RATE_LIMIT="4")
    first, second = _limit(redis_url, settings), _limit(redis_url, settings)

    first.reserve(timedelta(seconds=5))
    waited = second.reserve(timedelta(seconds=5)).wait

    assert timedelta(milliseconds=150) <= waited <= timedelta(milliseconds=250)


def test_a_429_pauses_every_request_until_its_reset(
    base_env: dict[str, str], redis_url: str
) -> None:
    """After a 429, no slot is given until SID's reset time; later is kept."""
    limit = _limit(redis_url, _settings(base_env))
    reset = datetime.now(UTC) + timedelta(seconds=2)

    limit.pause_for_rate_limit(reset)
    kept = limit.pause_for_rate_limit(reset - timedelta(seconds=1))
    admission = limit.reserve(timedelta(seconds=5))

    assert abs(kept - reset) < timedelta(milliseconds=2)
    assert admission.paused
    assert not admission.granted
    assert timedelta(seconds=1) < admission.wait <= timedelta(seconds=2)
    assert isinstance(limit.take_claims(10), timedelta)
    assert redis.Redis.from_url(redis_url).pttl(RATE_LIMIT_PAUSE_KEY) > 0


def test_a_rejected_client_pauses_longer_each_time(
    base_env: dict[str, str], redis_url: str
) -> None:
    """Repeated client rejections double the pause."""
    limit = _limit(redis_url, _settings(base_env))

    first = limit.pause_for_rejected_client() - datetime.now(UTC)
    second = limit.pause_for_rejected_client() - datetime.now(UTC)

    assert CLIENT_PAUSE_FIRST * 0.9 < first <= CLIENT_PAUSE_FIRST
    assert CLIENT_PAUSE_FIRST * 1.9 < second <= CLIENT_PAUSE_FIRST * 2
    assert limit.reserve(timedelta(seconds=1)).paused


def test_a_worker_with_corrected_credentials_is_not_held_back(
    base_env: dict[str, str], redis_url: str
) -> None:
    """The rejected-client pause applies to the configuration that was rejected."""
    wrong = _settings(base_env, SID_CLIENT_ID="id", SID_CLIENT_SECRET="wrong")
    right = _settings(base_env, SID_CLIENT_ID="id", SID_CLIENT_SECRET="right")
    _limit(redis_url, wrong).pause_for_rejected_client()

    admission = _limit(redis_url, right).reserve(timedelta(seconds=1))

    assert client_fingerprint(wrong) != client_fingerprint(right)
    assert admission.granted


def test_claims_are_budgeted_at_the_rate_and_refunded_when_unused(
    base_env: dict[str, str], redis_url: str
) -> None:
    """A scan claims at most two intervals of the rate; unused claims return."""
    limit = _limit(redis_url, _settings(base_env, SIDTOKENS_TOKEN_RATE_LIMIT="10"))

    first = limit.take_claims(500)
    limit.refund_claims(5)
    second = limit.take_claims(500)
    time.sleep(0.3)
    third = limit.take_claims(500)

    assert (first, second) == (20, 5)
    assert 3 <= third <= 6
