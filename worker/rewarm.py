"""Re-warming Redis from PostgreSQL after the cache lost keys, without calling SID.

The database keeps every user's current access token (encrypted) and its expiry,
so a flushed, restarted or evicting Redis is repaired from there: a refresh
stampede would cost SID requests, rate-limit budget and, with rotation, risk.

One pass walks the connected users in primary-key order (keyset pagination, one
page per query), asks Redis in one pipelined round trip which of the page's keys
are missing, and reads and decrypts tokens only for those. A token with more
than the cache margin left is published (a publish never replaces a longer-lived
token, so racing a refresh is harmless); one with less is made due now, so the
next scan refreshes it.

The pass also counts users by ``sid_status`` for the ``sidtokens_users`` gauge:
it reads the whole table anyway, once per period, which a scan every few seconds
should not.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import TokenCipher
from shared.metrics import CACHE_WRITES, USERS
from shared.models import Status
from shared.runtime import Runtime
from shared.token_cache import TokenCache
from worker import claims

log = logging.getLogger("sidtokens.worker")

PAGE_SIZE = 1000
#: Held while a periodic re-warm runs, so two beats do not double the work.
LOCK_KEY = "sid:rewarm:lock"

_FIRST_PAGE = sa.text(
    """
    SELECT id::text AS user_id FROM users
    WHERE sid_status = 'connected'
    ORDER BY id LIMIT :limit
    """
)
_NEXT_PAGE = sa.text(
    """
    SELECT id::text AS user_id FROM users
    WHERE sid_status = 'connected' AND id > :after
    ORDER BY id LIMIT :limit
    """
)
_TOKENS = sa.text(
    """
    SELECT id::text AS user_id, sid_access_token AS access_token,
           sid_expires_at AS expires_at
    FROM users
    WHERE id IN :user_ids AND sid_status = 'connected'
    """
).bindparams(sa.bindparam("user_ids", expanding=True))
_MAKE_DUE = sa.text(
    """
    UPDATE users SET sid_refresh_at = now()
    WHERE id IN :user_ids AND sid_status = 'connected'
      AND sid_refresh_at > now()
      AND (sid_lease_until IS NULL OR sid_lease_until <= now())
    """
).bindparams(sa.bindparam("user_ids", expanding=True))


@dataclasses.dataclass(frozen=True)
class RewarmReport:
    checked: int = 0
    missing: int = 0
    published: int = 0
    made_due: int = 0

    def __add__(self, other: RewarmReport) -> RewarmReport:
        return RewarmReport(
            *(
                getattr(self, field.name) + getattr(other, field.name)
                for field in dataclasses.fields(self)
            )
        )


@dataclasses.dataclass(frozen=True)
class _Stored:
    user_id: str
    access_token: str | None = dataclasses.field(repr=False)
    expires_at: datetime | None


def _page(sessions: sessionmaker[Session], after: str | None) -> list[str]:
    with sessions.begin() as session:
        if after is None:
            rows = session.execute(_FIRST_PAGE, {"limit": PAGE_SIZE})
        else:
            rows = session.execute(_NEXT_PAGE, {"after": after, "limit": PAGE_SIZE})
        return [row.user_id for row in rows]


def _stored(
    sessions: sessionmaker[Session], user_ids: list[str], cipher: TokenCipher
) -> list[_Stored]:
    with sessions.begin() as session:
        rows = session.execute(_TOKENS, {"user_ids": user_ids}).all()
    return [
        _Stored(
            row.user_id,
            None if row.access_token is None else cipher.decrypt(row.access_token),
            row.expires_at,
        )
        for row in rows
    ]


def _make_due(sessions: sessionmaker[Session], user_ids: list[str]) -> int:
    if not user_ids:
        return 0
    with sessions.begin() as session:
        result = session.execute(_MAKE_DUE, {"user_ids": user_ids})
    rowcount: int = getattr(result, "rowcount", 0)
    return rowcount


def _repair(runtime: Runtime, user_ids: list[str]) -> RewarmReport:
    """Publish the page's missing tokens that are still good; make the rest due."""
    missing = runtime.cache.missing(user_ids)
    if not missing:
        return RewarmReport(checked=len(user_ids))
    stored = _stored(runtime.sessions, missing, runtime.cipher)
    now = datetime.now(UTC)
    good = [item for item in stored if _is_publishable(runtime.cache, item, now)]
    good_ids = {item.user_id for item in good}
    stale = [item.user_id for item in stored if item.user_id not in good_ids]
    published = runtime.cache.publish_many(
        (item.user_id, item.access_token, item.expires_at)
        for item in good
        if item.access_token is not None and item.expires_at is not None
    )
    CACHE_WRITES.labels("rewarm").inc(published)
    return RewarmReport(
        checked=len(user_ids),
        missing=len(missing),
        published=published,
        made_due=_make_due(runtime.sessions, stale),
    )


def _is_publishable(cache: TokenCache, item: _Stored, now: datetime) -> bool:
    return (
        item.access_token is not None
        and item.expires_at is not None
        and cache.is_publishable(item.expires_at, now)
    )


def _count_users(runtime: Runtime) -> None:
    counts = claims.count_by_status(runtime.sessions)
    for status in Status:
        USERS.labels(str(status)).set(counts.pop(str(status), 0))
    for other, users in counts.items():
        USERS.labels(other).set(users)


def rewarm(runtime: Runtime) -> RewarmReport:
    """Publish every still-valid stored token whose key is missing from Redis."""
    report = RewarmReport()
    after: str | None = None
    while page := _page(runtime.sessions, after):
        report += _repair(runtime, page)
        after = page[-1]
    _count_users(runtime)
    level = logging.INFO if report.missing else logging.DEBUG
    log.log(
        level,
        "rewarm checked %d connected users: %d missing, %d published, %d made due",
        report.checked,
        report.missing,
        report.published,
        report.made_due,
    )
    return report


def rewarm_once(runtime: Runtime, period: timedelta) -> RewarmReport | None:
    """Re-warm unless another worker started one within ``period``."""
    token = secrets.token_hex(8)
    milliseconds = max(1, int(period.total_seconds() * 1000))
    if not runtime.cache.client.set(LOCK_KEY, token, nx=True, px=milliseconds):
        log.debug("a re-warm already ran within the period; skipping")
        return None
    return rewarm(runtime)
