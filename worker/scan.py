"""The scan beat triggers: claim what is due, hand it to workers in batches.

Beat only *triggers*. What is due is decided in SQL on the database's clock, and
the claim (:func:`worker.claims.claim_due`) is safe to run concurrently, so a
second beat started by mistake, a scan delivered twice or a scan that overlaps
the next one cost nothing but a few empty claims.

A scan claims at most what the shared rate limit lets through before the claims'
leases would lapse (:meth:`worker.rate_limit.RateLimit.take_claims`), so a large
backlog (after an outage, or a herd of users who connected together) drains at
the provider's pace instead of piling up in the broker. While SID is paused
(a 429, a rejected client) nothing is claimed at all.

Each scan also updates the due-backlog gauges, which the partial index answers at
the cost of what is due, and checks a sentinel key in Redis: when it is gone the
cache was lost, and a re-warm is dispatched at once instead of at the next period.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Callable, Sequence
from datetime import timedelta

from shared.metrics import CLAIMED, DUE_BACKLOG, OLDEST_DUE_LAG, SCAN_SECONDS
from shared.runtime import Runtime
from shared.settings import Settings
from worker import claims
from worker.claims import Claim
from worker.rate_limit import rate_limit_for
from worker.refresh import needed_at_start

log = logging.getLogger("sidtokens.worker")

#: Present while Redis holds what the re-warm last wrote; gone after a data loss.
CACHE_SENTINEL_KEY = "sid:cache:warm"
#: Most users in one refresh message. Fewer when little is due, so that a small
#: scan still spreads over a worker's threads instead of queueing in one.
MAX_BATCH = 50

Dispatch = Callable[[Sequence[Claim], timedelta], None]


@dataclasses.dataclass(frozen=True)
class ScanReport:
    claimed: int
    batches: int
    due_left: int
    paused_for: timedelta | None = None
    cache_lost: bool = False


def batch_size(claimed: int, settings: Settings) -> int:
    """Users per message: one worker's threads share a scan, up to MAX_BATCH each."""
    return max(1, min(MAX_BATCH, math.ceil(claimed / settings.worker_concurrency)))


def claim_lifetime(settings: Settings) -> timedelta:
    """How long a dispatched claim can still be started: its message's expiry."""
    lease = timedelta(seconds=settings.refresh_lease_seconds)
    return lease - needed_at_start(settings)


def scan(
    runtime: Runtime,
    dispatch: Dispatch,
    rewarm: Callable[[], None] | None = None,
) -> ScanReport:
    """Claim due users within the rate limit and dispatch them in batches."""
    with SCAN_SECONDS.time():
        cache_lost = _cache_lost(runtime)
        if cache_lost and rewarm is not None:
            log.warning("the token cache lost its data; re-warming it now")
            rewarm()
        claimed, paused_for = _claim(runtime)
        batches = _dispatch(claimed, runtime.settings, dispatch)
        backlog = claims.backlog(runtime.sessions)
    DUE_BACKLOG.set(backlog.due)
    OLDEST_DUE_LAG.set(backlog.oldest_lag.total_seconds())
    return ScanReport(
        claimed=len(claimed),
        batches=batches,
        due_left=backlog.due,
        paused_for=paused_for,
        cache_lost=cache_lost,
    )


def _cache_lost(runtime: Runtime) -> bool:
    """Whether the sentinel was missing (and is now set again)."""
    return bool(runtime.cache.client.set(CACHE_SENTINEL_KEY, "1", nx=True))


def _claim(runtime: Runtime) -> tuple[list[Claim], timedelta | None]:
    settings = runtime.settings
    limit = rate_limit_for(runtime.cache.client, settings)
    allowed = limit.take_claims(settings.scan_batch_size)
    if isinstance(allowed, timedelta):
        log.info(
            "SID is paused for %.1fs more; claiming nothing", allowed.total_seconds()
        )
        return [], allowed
    claimed = claims.claim_due(
        runtime.sessions,
        limit=allowed,
        lease=timedelta(seconds=settings.refresh_lease_seconds),
    )
    limit.refund_claims(allowed - len(claimed))
    CLAIMED.inc(len(claimed))
    return claimed, None


def _dispatch(claimed: list[Claim], settings: Settings, dispatch: Dispatch) -> int:
    size = batch_size(len(claimed), settings)
    batches = [claimed[start : start + size] for start in range(0, len(claimed), size)]
    expires = claim_lifetime(settings)
    for batch in batches:
        dispatch(batch, expires)
    return len(batches)
