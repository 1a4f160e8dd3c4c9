"""What a refresh can end in, and when a failed one is tried again.

Every provider error is classified once, here, into an :class:`Outcome`:

==========================  ================  ======================================
error                       outcome           what happens to the user
==========================  ================  ======================================
:class:`GrantRefused`       ``refused``       ``needs_reconnect`` unless a concurrent
                                              write explains it; never retried
:class:`ClientMisconfigured` ``misconfigured`` retried after the client pause
:class:`RateLimited`        ``rate_limited``  retried after SID's reset time
:class:`ProviderUnavailable` ``unavailable``  retried with backoff
:class:`MalformedResponse`  ``malformed``     retried with backoff
==========================  ================  ======================================

Backoff is per user and lives in the database (``sid_refresh_at`` and
``sid_refresh_attempts``), never in a broker countdown: a retry is simply the user
becoming due again, so it survives any worker dying and blocks no one else.

The delay doubles from :data:`RETRY_FIRST` with each consecutive failure, drawn
from the upper half of its range so users that failed together spread out. After
``SIDTOKENS_MAX_REFRESH_ATTEMPTS`` failures the user stays connected and is tried
every :data:`RETRY_CAP`: a refresh token outlives an outage of SID by days, and
giving up would make every user reconnect after one. The request rate this leaves
is bounded by the shared rate limit in any case.

A timeout after the request was sent is ambiguous: SID may have rotated the
refresh token and the answer got lost. The next attempt then presents a token
SID has already replaced. With a reuse leeway (Auth0's "rotation overlap period")
the prompt first retry falls inside it and succeeds; without one SID refuses it,
revokes the family, and the user has to reconnect. No client can avoid that: the
only valid refresh token was in the lost answer.
"""

from __future__ import annotations

import enum
import random
from datetime import timedelta

import requests
from urllib3.exceptions import NewConnectionError

from shared.errors import (
    ClientMisconfigured,
    GrantRefused,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)

RETRY_FIRST = timedelta(seconds=1)
RETRY_CAP = timedelta(minutes=5)


class Outcome(enum.StrEnum):
    """How one refresh ended; the values label ``sidtokens_refreshes_total``."""

    OK = "ok"
    REFUSED = "refused"
    MISCONFIGURED = "misconfigured"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"
    MALFORMED = "malformed"
    #: The claim was lost after SID was called; the result was not written.
    FENCED = "fenced"
    #: The claim was stale before anything happened (a duplicate or late message).
    SKIPPED = "skipped"
    #: Put back without a request: SID is paused or no rate-limit slot came soon.
    DEFERRED = "deferred"

    @property
    def is_retried(self) -> bool:
        return self in _RETRIED


_RETRIED = frozenset(
    {
        Outcome.MISCONFIGURED,
        Outcome.RATE_LIMITED,
        Outcome.UNAVAILABLE,
        Outcome.MALFORMED,
        Outcome.DEFERRED,
    }
)

_OUTCOMES: tuple[tuple[type[ProviderError], Outcome], ...] = (
    (GrantRefused, Outcome.REFUSED),
    (ClientMisconfigured, Outcome.MISCONFIGURED),
    (RateLimited, Outcome.RATE_LIMITED),
    (ProviderUnavailable, Outcome.UNAVAILABLE),
    (MalformedResponse, Outcome.MALFORMED),
)


def classify(error: ProviderError) -> Outcome:
    """The outcome a provider error stands for."""
    for kind, outcome in _OUTCOMES:
        if isinstance(error, kind):
            return outcome
    return Outcome.UNAVAILABLE


def is_ambiguous(error: ProviderError) -> bool:
    """Whether SID may have acted on a request whose answer we did not get.

    A read timeout or a connection dropped mid-answer is ambiguous; a connection
    that was never made, or any answer SID did send, is not.
    """
    cause = error.__cause__
    if not isinstance(error, ProviderUnavailable) or error.status is not None:
        return False
    if not isinstance(cause, requests.RequestException):
        return False
    return not _never_connected(cause)


def _never_connected(cause: requests.RequestException) -> bool:
    if isinstance(cause, requests.ConnectTimeout):
        return True
    reason = getattr(cause.args[0], "reason", None) if cause.args else None
    return isinstance(reason, NewConnectionError)


def retry_delay(
    failures: int, max_attempts: int, rng: random.Random | None = None
) -> timedelta:
    """How long to wait after the ``failures``-th consecutive transient failure."""
    if failures >= max_attempts:
        ceiling = RETRY_CAP
    else:
        ceiling = min(RETRY_CAP, RETRY_FIRST * 2 ** max(0, failures - 1))
    return ceiling * (rng or random).uniform(0.5, 1.0)
