"""Classifying provider errors and spacing retries: pure functions, no I/O."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError

from shared.errors import (
    ClientMisconfigured,
    GrantRefused,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from worker.failures import (
    RETRY_CAP,
    RETRY_FIRST,
    Outcome,
    classify,
    is_ambiguous,
    retry_delay,
)


@pytest.mark.parametrize(
    ("error", "outcome"),
    [
        (GrantRefused("refused", status=403), Outcome.REFUSED),
        (ClientMisconfigured("bad client", status=401), Outcome.MISCONFIGURED),
        (
            RateLimited("slow down", reset_at=datetime.now(UTC)),
            Outcome.RATE_LIMITED,
        ),
        (ProviderUnavailable("down", status=503), Outcome.UNAVAILABLE),
        (MalformedResponse("garbled", status=200), Outcome.MALFORMED),
    ],
    ids=["invalid-grant", "invalid-client", "429", "5xx", "malformed"],
)
def test_each_provider_error_has_one_outcome(
    error: ProviderError, outcome: Outcome
) -> None:
    """Errors map to outcomes once; only refusals are never retried."""
    assert classify(error) is outcome
    assert outcome.is_retried is (outcome is not Outcome.REFUSED)


def _unavailable_from(cause: Exception) -> ProviderUnavailable:
    try:
        raise ProviderUnavailable("SID did not answer") from cause
    except ProviderUnavailable as error:
        return error


@pytest.mark.parametrize(
    ("cause", "ambiguous"),
    [
        (requests.ReadTimeout("read timed out"), True),
        (requests.ConnectionError("connection reset by peer"), True),
        (requests.ConnectTimeout("connect timed out"), False),
        (
            requests.ConnectionError(
                MaxRetryError(None, "/", NewConnectionError(None, "refused"))  # type: ignore[arg-type]
            ),
            False,
        ),
    ],
    ids=["read-timeout", "reset", "connect-timeout", "refused"],
)
def test_only_a_request_that_may_have_reached_sid_is_ambiguous(
    cause: Exception, ambiguous: bool
) -> None:
    """A lost answer may hide a rotation; a connection never made cannot."""
    assert is_ambiguous(_unavailable_from(cause)) is ambiguous


def test_a_5xx_answer_is_not_ambiguous() -> None:
    """SID answered, so it did not hand out tokens we never saw."""
    assert not is_ambiguous(ProviderUnavailable("down", status=503))


def test_retry_delays_double_within_jittered_bounds() -> None:
    """The n-th failure waits between half and all of 2**(n-1) seconds."""
    rng = random.Random(1)

    delays = [retry_delay(n, 8, rng) for n in range(1, 6)]

    for failures, delay in enumerate(delays, start=1):
        ceiling = RETRY_FIRST * 2 ** (failures - 1)
        assert ceiling / 2 <= delay <= ceiling


def test_retry_delays_are_capped_and_stay_at_the_cap_after_the_last_attempt() -> None:
    """Past the attempt budget a user is retried at the slowest pace, not dropped."""
    rng = random.Random(2)

    late = [retry_delay(n, 8, rng) for n in (8, 9, 50)]
    long_streak = retry_delay(20, 100, rng)

    assert all(RETRY_CAP / 2 <= delay <= RETRY_CAP for delay in late)
    assert long_streak <= RETRY_CAP


def test_jitter_spreads_users_that_failed_together() -> None:
    """A hundred users failing at once do not come back at once."""
    rng = random.Random(3)

    delays = {retry_delay(3, 8, rng) for _ in range(100)}

    assert len(delays) == 100
    assert max(delays) - min(delays) > timedelta(seconds=1)
