"""One refresh of one claimed user, from the start fence to the published token.

The steps, each named below:

1. **admit**: ask the shared rate limit for a slot (a short wait at most); a pause
   or a long wait puts the claim back without calling SID.
2. **start**: pass the start fence in PostgreSQL, which hands back the refresh
   token and guarantees nobody else can start this user's refresh until our
   renewed lease ends. No transaction stays open past this point.
3. **request**: call SID's token endpoint.
4. **store**: write the tokens behind the write fence, rotated refresh token
   first, *then* publish the access token to Redis. PostgreSQL holds the only
   copy of a rotated refresh token that matters; Redis is a cache a re-warm
   rebuilds.

Failures are classified once (:mod:`worker.failures`) and handled in
:func:`_settle`. Every claim that reaches the start fence ends in exactly one log
line with the user id, outcome, attempt, duration and new expiry, and never a
token.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy.exc import DBAPIError

from shared.errors import (
    ConfigurationError,
    ProviderError,
    RateLimited,
    StorageError,
)
from shared.metrics import (
    CACHE_WRITES,
    RATE_LIMITED,
    REFRESH_SECONDS,
    REFRESHES,
    TOKEN_REQUESTS,
)
from shared.oauth import SidClient, TokenGrant
from shared.runtime import Runtime
from shared.settings import Settings
from shared.token_cache import Event
from shared.users import next_refresh_at
from worker import claims
from worker.claims import Claim, Started
from worker.failures import Outcome, classify, is_ambiguous, retry_delay
from worker.rate_limit import Admission, RateLimit, rate_limit_for

log = logging.getLogger("sidtokens.worker")

#: Lease that must be left, beyond the HTTP timeout, for a refresh to start.
START_MARGIN = timedelta(seconds=2)
#: The longest a worker sleeps for a rate-limit slot before putting a claim back.
SLOT_WAIT = timedelta(seconds=2)
#: Storing a rotated refresh token is retried this often if PostgreSQL hiccups:
#: losing it would cost the user their connection.
STORE_ATTEMPTS = 4
STORE_BACKOFF = timedelta(milliseconds=250)

_LEVELS = {
    Outcome.OK: logging.INFO,
    Outcome.REFUSED: logging.WARNING,
    Outcome.MISCONFIGURED: logging.ERROR,
    Outcome.RATE_LIMITED: logging.WARNING,
    Outcome.UNAVAILABLE: logging.WARNING,
    Outcome.MALFORMED: logging.WARNING,
    Outcome.FENCED: logging.ERROR,
    Outcome.SKIPPED: logging.DEBUG,
    Outcome.DEFERRED: logging.DEBUG,
}


@dataclasses.dataclass(frozen=True)
class Refresh:
    """How one claim ended; ``repr`` shows no token."""

    user_id: str
    outcome: Outcome
    attempt: int | None = None
    expires_at: datetime | None = None
    access_token: str | None = dataclasses.field(default=None, repr=False)
    retry_in: timedelta | None = None
    detail: str | None = None


def needed_at_start(settings: Settings) -> timedelta:
    """Lease that must be left when SID is called: the HTTP timeout and a margin."""
    return timedelta(seconds=settings.http_timeout_seconds) + START_MARGIN


def check_settings(settings: Settings) -> None:
    """Refuse settings under which a lease could lapse during a request."""
    needed = needed_at_start(settings) + START_MARGIN
    if timedelta(seconds=settings.refresh_lease_seconds) < needed:
        raise ConfigurationError(
            f"SIDTOKENS_REFRESH_LEASE_SECONDS={settings.refresh_lease_seconds} is "
            "too short for SIDTOKENS_HTTP_TIMEOUT_SECONDS="
            f"{settings.http_timeout_seconds:g}; set the lease to at least "
            f"{needed.total_seconds():g}s, or lower the timeout",
            variable="SIDTOKENS_REFRESH_LEASE_SECONDS",
        )


def refresh_claimed(
    runtime: Runtime,
    claim: Claim,
    *,
    slot_wait: timedelta = SLOT_WAIT,
    rng: random.Random | None = None,
) -> Refresh:
    """Refresh one claimed user, exactly once, and say how it ended."""
    began = time.monotonic()
    result = _refresh(runtime, claim, slot_wait, rng or random.Random())
    _record(result, time.monotonic() - began)
    return result


def _refresh(
    runtime: Runtime, claim: Claim, slot_wait: timedelta, rng: random.Random
) -> Refresh:
    limit = rate_limit_for(runtime.cache.client, runtime.settings)
    admission = limit.reserve(slot_wait)
    if not admission.granted:
        return _defer(runtime, claim, admission, rng)
    time.sleep(admission.wait.total_seconds())

    started = claims.start(
        runtime.sessions,
        claim,
        lease=timedelta(seconds=runtime.settings.refresh_lease_seconds),
        needed=needed_at_start(runtime.settings),
        cipher=runtime.cipher,
    )
    if started is None:
        return Refresh(claim.user_id, Outcome.SKIPPED, detail="stale claim")
    if started.refresh_token is None:
        return _retire(runtime, started, reason="no refresh token stored")

    try:
        grant = _request(runtime.client, started.refresh_token)
    except ProviderError as error:
        return _settle(runtime, limit, started, error, rng)
    return _store(runtime, started, grant)


def _defer(
    runtime: Runtime, claim: Claim, admission: Admission, rng: random.Random
) -> Refresh:
    """Put a claim back untouched: SID is paused or its rate limit is busy."""
    delay = admission.wait + timedelta(seconds=rng.uniform(0, 1))
    claims.put_back(runtime.sessions, claim, delay=delay)
    reason = "paused" if admission.paused else "rate limit busy"
    return Refresh(claim.user_id, Outcome.DEFERRED, retry_in=delay, detail=reason)


def _request(client: SidClient, refresh_token: str) -> TokenGrant:
    try:
        grant = client.refresh(refresh_token)
    except ProviderError as error:
        TOKEN_REQUESTS.labels("refresh_token", _status_class(error.status)).inc()
        raise
    TOKEN_REQUESTS.labels("refresh_token", "2xx").inc()
    return grant


def _status_class(status: int | None) -> str:
    if status is None:
        return "none"
    return "429" if status == 429 else f"{status // 100}xx"


def _store(runtime: Runtime, started: Started, grant: TokenGrant) -> Refresh:
    """Write the new tokens behind the write fence, then publish the access token."""
    attempt = started.attempts + 1
    refresh_at = next_refresh_at(grant.expires_at, grant.lifetime, runtime.settings)
    if not _finish(runtime, started, grant, refresh_at):
        return Refresh(
            started.user_id,
            Outcome.FENCED,
            attempt,
            detail="the claim moved while SID was called; the result was dropped",
        )
    _publish(runtime, started.user_id, grant)
    return Refresh(
        started.user_id,
        Outcome.OK,
        attempt,
        expires_at=grant.expires_at,
        access_token=grant.access_token,
    )


def _finish(
    runtime: Runtime, started: Started, grant: TokenGrant, refresh_at: datetime
) -> bool:
    """Run the write fence, retrying a database that briefly fails.

    After a rotation the new refresh token exists nowhere else, so a short outage
    of PostgreSQL is waited out rather than turned into a lost connection.
    """
    for attempt in range(1, STORE_ATTEMPTS + 1):
        try:
            return claims.finish(
                runtime.sessions,
                started,
                grant,
                refresh_at=refresh_at,
                cipher=runtime.cipher,
            )
        except DBAPIError as exc:
            if attempt == STORE_ATTEMPTS:
                raise StorageError(
                    f"could not store the refreshed tokens of user {started.user_id} "
                    f"({type(exc.orig).__name__}); if SID rotated the refresh "
                    "token, this user will have to reconnect"
                ) from exc
            time.sleep((STORE_BACKOFF * 2 ** (attempt - 1)).total_seconds())
    raise AssertionError("unreachable")


def _publish(runtime: Runtime, user_id: str, grant: TokenGrant) -> None:
    """Publish the access token; a Redis failure leaves it to the re-warm."""
    try:
        written = runtime.cache.publish(user_id, grant.access_token, grant.expires_at)
    except StorageError as error:
        log.warning(
            "stored user %s's new token but could not publish it: %s; the re-warm "
            "will publish it",
            user_id,
            error,
        )
        return
    if written:
        CACHE_WRITES.labels("refresh").inc()


def _settle(
    runtime: Runtime,
    limit: RateLimit,
    started: Started,
    error: ProviderError,
    rng: random.Random,
) -> Refresh:
    """Handle a refresh SID did not answer with tokens, by the error's class."""
    outcome = classify(error)
    if outcome is Outcome.REFUSED:
        return _retire(runtime, started, reason=_reason(outcome, error))
    if outcome is Outcome.MISCONFIGURED:
        until = limit.pause_for_rejected_client()
        return _put_back_until(runtime, started, outcome, error, until, rng)
    if isinstance(error, RateLimited):
        RATE_LIMITED.inc()
        until = limit.pause_for_rate_limit(error.reset_at)
        return _put_back_until(runtime, started, outcome, error, until, rng)
    return _put_back_with_backoff(runtime, started, outcome, error, rng)


def _retire(runtime: Runtime, started: Started, *, reason: str) -> Refresh:
    """The grant is gone: needs_reconnect, key deleted, one event; or a lost race."""
    attempt = started.attempts + 1
    if not claims.retire(
        runtime.sessions, started, cipher=runtime.cipher, reason=reason
    ):
        return Refresh(
            started.user_id,
            Outcome.FENCED,
            attempt,
            detail="refused a refresh token a concurrent writer had replaced",
        )
    runtime.cache.delete(started.user_id, event=Event.NEEDS_RECONNECT)
    return Refresh(started.user_id, Outcome.REFUSED, attempt, detail=reason)


def _put_back_until(
    runtime: Runtime,
    started: Started,
    outcome: Outcome,
    error: ProviderError,
    until: datetime,
    rng: random.Random,
) -> Refresh:
    """Retry after a pause that is nobody's fault of this user's: attempts stay."""
    delay = max(timedelta(0), until - datetime.now(UTC))
    delay += timedelta(seconds=rng.uniform(0, 1))
    claims.put_back(
        runtime.sessions, started, delay=delay, reason=_reason(outcome, error)
    )
    return Refresh(
        started.user_id,
        outcome,
        started.attempts + 1,
        retry_in=delay,
        detail=str(error),
    )


def _put_back_with_backoff(
    runtime: Runtime,
    started: Started,
    outcome: Outcome,
    error: ProviderError,
    rng: random.Random,
) -> Refresh:
    """A transient failure: try this user again later, the later the more it fails."""
    failures = started.attempts + 1
    delay = retry_delay(failures, runtime.settings.max_refresh_attempts, rng)
    claims.put_back(
        runtime.sessions,
        started,
        delay=delay,
        attempts=failures,
        reason=_reason(outcome, error),
    )
    detail = str(error)
    if is_ambiguous(error):
        detail += "; SID may have rotated the refresh token before the answer was lost"
    if failures == runtime.settings.max_refresh_attempts:
        detail += "; retries continue at the slowest pace while the user is connected"
    return Refresh(started.user_id, outcome, failures, retry_in=delay, detail=detail)


def _reason(outcome: Outcome, error: ProviderError) -> str:
    """What ``sid_last_error`` records: the class, status and OAuth error code."""
    parts = [str(outcome)]
    if error.status is not None:
        parts.append(str(error.status))
    if error.error:
        parts.append(error.error)
    elif error.__cause__ is not None:
        parts.append(type(error.__cause__).__name__)
    return " ".join(parts)


def _record(result: Refresh, duration: float) -> None:
    """The refresh's one log line and its metrics."""
    REFRESHES.labels(str(result.outcome)).inc()
    if result.outcome not in {Outcome.SKIPPED, Outcome.DEFERRED}:
        REFRESH_SECONDS.observe(duration)
    fields: dict[str, object] = {
        "user_id": result.user_id,
        "outcome": str(result.outcome),
        "attempt": result.attempt,
        "duration_ms": round(duration * 1000),
        "expires_at": result.expires_at.isoformat() if result.expires_at else None,
    }
    if result.retry_in is not None:
        fields["retry_in_s"] = round(result.retry_in.total_seconds(), 1)
    if result.detail:
        fields["detail"] = result.detail
    log.log(_LEVELS[result.outcome], "refresh %s", result.outcome, extra=fields)
