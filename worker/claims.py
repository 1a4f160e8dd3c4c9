"""Claims on users' refreshes: PostgreSQL is both the truth and the queue.

A user is *due* when ``sid_refresh_at <= now()``; the partial index
``ix_users_sid_refresh_due`` (``WHERE sid_status = 'connected'``) holds exactly the
connected users ordered by that column, so finding the due ones costs what is due,
not the size of the table.

A refresh passes three fences, each one short statement on the database's clock,
and no transaction stays open while SID is called:

1. **Claim** (:func:`claim_due`, :func:`claim_user`): due rows are locked with
   ``FOR NO KEY UPDATE SKIP LOCKED``, so concurrent scans (two beats) get disjoint
   users; each gets a lease (``sid_lease_until`` and ``sid_refresh_at`` moved to
   the lease's end) and ``sid_refresh_version + 1``. A claim that is never worked
   on (a worker killed, a message lost) lapses with its lease: the user is simply
   due again and the next scan claims it with a newer version.
2. **Start** (:func:`start`): just before calling SID, the claim's version must
   still be current and the lease must have more than an HTTP timeout left. The
   version is incremented again and the lease renewed, so a claim starts at most
   once even when its message is delivered twice. This is what makes "one refresh
   at a time per user" hold across all workers.
3. **Write** (:func:`finish`): the result is stored only if the version is still
   the one the start returned. Every other writer of a user's tokens (a connect,
   a disconnect) increments the version too, so a late result never overwrites
   theirs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session, sessionmaker

from shared.crypto import TokenCipher
from shared.models import Status
from shared.oauth import TokenGrant
from shared.users import clear_connection

CLAIM_DUE = sa.text(
    """
    WITH due AS MATERIALIZED (
        SELECT id FROM users
        WHERE sid_status = 'connected' AND sid_refresh_at <= now()
        ORDER BY sid_refresh_at
        LIMIT :limit
        FOR NO KEY UPDATE SKIP LOCKED
    )
    UPDATE users AS u
    SET sid_lease_until = now() + make_interval(secs => :lease),
        sid_refresh_at = now() + make_interval(secs => :lease),
        sid_refresh_version = u.sid_refresh_version + 1
    FROM due
    WHERE u.id = due.id
    RETURNING u.id::text AS user_id, u.sid_refresh_version AS version
    """
)

_CLAIM_USER = sa.text(
    """
    UPDATE users
    SET sid_lease_until = now() + make_interval(secs => :lease),
        sid_refresh_at = now() + make_interval(secs => :lease),
        sid_refresh_version = sid_refresh_version + 1
    WHERE id = :user_id AND sid_status = 'connected'
      AND (sid_lease_until IS NULL OR sid_lease_until <= now())
    RETURNING id::text AS user_id, sid_refresh_version AS version
    """
)

_RENEW = sa.text(
    """
    UPDATE users
    SET sid_lease_until = now() + make_interval(secs => :lease),
        sid_refresh_at = now() + make_interval(secs => :lease)
    WHERE (id, sid_refresh_version) IN :claims
      AND sid_lease_until > now()
    """
).bindparams(sa.bindparam("claims", expanding=True))

_START = sa.text(
    """
    UPDATE users
    SET sid_lease_until = now() + make_interval(secs => :lease),
        sid_refresh_at = now() + make_interval(secs => :lease),
        sid_refresh_version = sid_refresh_version + 1
    WHERE id = :user_id AND sid_refresh_version = :version
      AND sid_status = 'connected'
      AND sid_lease_until > now() + make_interval(secs => :needed)
    RETURNING sid_refresh_version AS version, sid_refresh_token AS refresh_token,
              sid_refresh_attempts AS attempts, sid_expires_at AS expires_at
    """
)

_FINISH = sa.text(
    """
    UPDATE users
    SET sid_access_token = :access_token,
        sid_refresh_token = :refresh_token,
        sid_expires_at = :expires_at,
        sid_refreshed_at = now(),
        sid_refresh_at = :refresh_at,
        sid_lease_until = NULL,
        sid_refresh_attempts = 0,
        sid_last_error = NULL
    WHERE id = :user_id AND sid_refresh_version = :version
    """
)

_PUT_BACK = sa.text(
    """
    UPDATE users
    SET sid_lease_until = NULL,
        sid_refresh_at = now() + make_interval(secs => :delay),
        sid_refresh_attempts = coalesce(:attempts, sid_refresh_attempts),
        sid_last_error = coalesce(:reason, sid_last_error)
    WHERE id = :user_id AND sid_refresh_version = :version
    """
)

_CURRENT = sa.text(
    """
    SELECT sid_refresh_version AS version, sid_refresh_token AS refresh_token
    FROM users WHERE id = :user_id
    FOR UPDATE
    """
)

_BACKLOG = sa.text(
    """
    SELECT count(*) AS due,
           coalesce(extract(epoch FROM now() - min(sid_refresh_at)), 0) AS lag
    FROM users
    WHERE sid_status = 'connected' AND sid_refresh_at <= now()
    """
)

_BY_STATUS = sa.text(
    """
    SELECT coalesce(sid_status, 'never_connected') AS status, count(*) AS users
    FROM users GROUP BY 1
    """
)


@dataclasses.dataclass(frozen=True)
class Claim:
    """A user whose refresh this worker may start, fenced by ``version``."""

    user_id: str
    version: int


@dataclasses.dataclass(frozen=True)
class Started:
    """A claim that passed the start fence; ``repr`` shows no token."""

    user_id: str
    version: int
    refresh_token: str | None = dataclasses.field(repr=False)
    attempts: int
    expires_at: datetime | None


@dataclasses.dataclass(frozen=True)
class Backlog:
    due: int
    oldest_lag: timedelta


def _seconds(duration: timedelta) -> float:
    return duration.total_seconds()


def claim_due(
    sessions: sessionmaker[Session], *, limit: int, lease: timedelta
) -> list[Claim]:
    """Claim up to ``limit`` due users, oldest due first, skipping locked rows."""
    if limit <= 0:
        return []
    with sessions.begin() as session:
        rows = session.execute(
            CLAIM_DUE, {"limit": limit, "lease": _seconds(lease)}
        ).all()
    return [Claim(row.user_id, row.version) for row in rows]


def claim_user(
    sessions: sessionmaker[Session], user_id: str, *, lease: timedelta
) -> Claim | None:
    """Claim one connected user now, unless someone holds a live lease on it."""
    with sessions.begin() as session:
        row = session.execute(
            _CLAIM_USER, {"user_id": user_id, "lease": _seconds(lease)}
        ).first()
    return None if row is None else Claim(row.user_id, row.version)


def renew(
    sessions: sessionmaker[Session], held: Sequence[Claim], *, lease: timedelta
) -> int:
    """Extend the live leases of claims not started yet; returns how many.

    A batch works through its users one after the other; renewing keeps the last
    ones from lapsing while the first are refreshed. A lapsed claim is not
    revived: someone else may have claimed the user since.
    """
    if not held:
        return 0
    pairs = [(claim.user_id, claim.version) for claim in held]
    with sessions.begin() as session:
        result = session.execute(_RENEW, {"claims": pairs, "lease": _seconds(lease)})
    return _changed(result)


def start(
    sessions: sessionmaker[Session],
    claim: Claim,
    *,
    lease: timedelta,
    needed: timedelta,
    cipher: TokenCipher,
) -> Started | None:
    """Pass the start fence, or ``None`` when the claim is stale or nearly lapsed."""
    with sessions.begin() as session:
        row = session.execute(
            _START,
            {
                "user_id": claim.user_id,
                "version": claim.version,
                "lease": _seconds(lease),
                "needed": _seconds(needed),
            },
        ).first()
    if row is None:
        return None
    refresh_token = (
        None if row.refresh_token is None else cipher.decrypt(row.refresh_token)
    )
    return Started(
        user_id=claim.user_id,
        version=row.version,
        refresh_token=refresh_token,
        attempts=row.attempts,
        expires_at=row.expires_at,
    )


def finish(
    sessions: sessionmaker[Session],
    started: Started,
    grant: TokenGrant,
    *,
    refresh_at: datetime,
    cipher: TokenCipher,
) -> bool:
    """Store a refresh's tokens behind the write fence; ``False`` if it was fenced.

    A provider that omits ``refresh_token`` keeps the one we sent, which
    :meth:`~shared.oauth.SidClient.refresh` already put in the grant.
    """
    refresh_token = grant.refresh_token or started.refresh_token
    assert refresh_token is not None
    with sessions.begin() as session:
        result = session.execute(
            _FINISH,
            {
                "user_id": started.user_id,
                "version": started.version,
                "access_token": cipher.encrypt(grant.access_token),
                "refresh_token": cipher.encrypt(refresh_token),
                "expires_at": grant.expires_at,
                "refresh_at": refresh_at,
            },
        )
    return _changed(result) == 1


def put_back(
    sessions: sessionmaker[Session],
    claim: Claim | Started,
    *,
    delay: timedelta,
    attempts: int | None = None,
    reason: str | None = None,
) -> bool:
    """Release a claim and make the user due again after ``delay``.

    ``attempts`` and ``reason`` replace the stored ones when given.
    """
    with sessions.begin() as session:
        result = session.execute(
            _PUT_BACK,
            {
                "user_id": claim.user_id,
                "version": claim.version,
                "delay": max(0.0, _seconds(delay)),
                "attempts": attempts,
                "reason": reason,
            },
        )
    return _changed(result) == 1


def retire(
    sessions: sessionmaker[Session],
    started: Started,
    *,
    cipher: TokenCipher,
    reason: str,
) -> bool:
    """Mark the user ``needs_reconnect`` after a refusal, unless it lost a race.

    SID says ``invalid_grant`` both for a revoked grant and for a refresh token
    that a concurrent writer had already replaced. So the row is re-read under a
    lock first: if its version or its refresh token moved since our start, the
    refusal is about a token nobody holds any more, and the row is left alone.
    Returns whether the user was retired.
    """
    with sessions.begin() as session:
        row = session.execute(_CURRENT, {"user_id": started.user_id}).first()
        if row is None or row.version != started.version:
            return False
        stored = (
            None if row.refresh_token is None else cipher.decrypt(row.refresh_token)
        )
        if stored != started.refresh_token:
            return False
        clear_connection(
            session, started.user_id, status=Status.NEEDS_RECONNECT, reason=reason
        )
    return True


def backlog(sessions: sessionmaker[Session]) -> Backlog:
    """How many connected users are due and unclaimed, and the oldest one's wait."""
    with sessions.begin() as session:
        row = session.execute(_BACKLOG).one()
    return Backlog(due=row.due, oldest_lag=timedelta(seconds=float(row.lag)))


def count_by_status(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Users per ``sid_status``: a full pass over the table, so call it rarely."""
    with sessions.begin() as session:
        rows = session.execute(_BY_STATUS).all()
    return {row.status: row.users for row in rows}


def _changed(result: sa.Result[object]) -> int:
    rowcount: int = getattr(result, "rowcount", 0)
    return rowcount
