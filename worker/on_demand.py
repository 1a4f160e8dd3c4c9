"""Refreshing one user now: for an application that found no token, or an operator.

It goes through the same claim and fences as the scheduled refresh, so it can run
on any machine, at any time, next to any number of workers:

- if nobody holds a live lease on the user, it claims the user and refreshes it
  in the calling thread;
- if a worker (or another on-demand call) holds one, it does not call SID: it
  waits for that refresh to finish and hands back its result.

Without ``force``, a stored access token that still has more than the cache
margin left is published and returned as it is: an application that finds no key
in Redis usually looks at a lost cache, not at an expired token.
"""

from __future__ import annotations

import dataclasses
import time
from datetime import datetime, timedelta

import sqlalchemy as sa

from shared import runtime as runtime_module
from shared.errors import StorageError
from shared.metrics import CACHE_WRITES
from shared.models import Status
from shared.runtime import Runtime
from shared.users import UnknownUser
from worker import claims
from worker.failures import Outcome
from worker.refresh import (
    SLOT_WAIT,
    Refresh,
    check_settings,
    refresh_claimed,
)

#: How often a caller waiting on another worker's refresh looks at the row.
POLL = timedelta(milliseconds=50)

_STATE = sa.text(
    """
    SELECT sid_status AS status, sid_access_token AS access_token,
           sid_expires_at AS expires_at,
           coalesce(sid_lease_until > now(), false) AS leased
    FROM users WHERE id = :user_id
    """
)


@dataclasses.dataclass(frozen=True)
class _State:
    status: str | None
    access_token: str | None = dataclasses.field(repr=False)
    expires_at: datetime | None
    leased: bool


def _state(runtime: Runtime, user_id: str) -> _State:
    with runtime.sessions.begin() as session:
        row = session.execute(_STATE, {"user_id": user_id}).first()
    if row is None:
        raise UnknownUser(user_id)
    token = row.access_token
    return _State(
        status=row.status,
        access_token=None if token is None else runtime.cipher.decrypt(token),
        expires_at=row.expires_at,
        leased=bool(row.leased),
    )


def _is_fresh(runtime: Runtime, state: _State) -> bool:
    return (
        state.access_token is not None
        and state.expires_at is not None
        and runtime.cache.is_publishable(state.expires_at)
    )


def _serve_stored(runtime: Runtime, user_id: str, state: _State) -> Refresh:
    """Hand back the stored token (publishing it again) if it is still good."""
    if not _is_fresh(runtime, state):
        return Refresh(
            user_id, Outcome.DEFERRED, detail="no fresh token after the last refresh"
        )
    assert state.access_token is not None and state.expires_at is not None
    try:
        if runtime.cache.publish(user_id, state.access_token, state.expires_at):
            CACHE_WRITES.labels("rewarm").inc()
    except StorageError:
        pass  # The caller still gets the token; the re-warm will publish it.
    return Refresh(
        user_id,
        Outcome.OK,
        expires_at=state.expires_at,
        access_token=state.access_token,
        detail="served the stored token",
    )


def refresh_user(
    runtime: Runtime, user_id: str, *, wait: float, force: bool = False
) -> Refresh:
    """Refresh ``user_id`` through the single-flight path, waiting at most ``wait``.

    Raises :class:`~shared.users.UnknownUser` when no row has that id.
    """
    check_settings(runtime.settings)
    deadline = time.monotonic() + wait
    lease = timedelta(seconds=runtime.settings.refresh_lease_seconds)
    waited_on_another = False
    while True:
        state = _state(runtime, user_id)
        if state.status != Status.CONNECTED:
            detail = f"the user is {state.status or 'not connected'}"
            return Refresh(user_id, Outcome.SKIPPED, detail=detail)
        if state.leased:
            waited_on_another = True
        elif waited_on_another or (not force and _is_fresh(runtime, state)):
            return _serve_stored(runtime, user_id, state)
        elif claim := claims.claim_user(runtime.sessions, user_id, lease=lease):
            left = timedelta(seconds=max(0.0, deadline - time.monotonic()))
            return refresh_claimed(runtime, claim, slot_wait=min(SLOT_WAIT, left))
        if time.monotonic() >= deadline:
            detail = "another refresh of this user did not finish in time"
            return Refresh(user_id, Outcome.DEFERRED, detail=detail)
        time.sleep(POLL.total_seconds())


def refresh_now(user_id: str, *, wait: float = 10.0, force: bool = False) -> str | None:
    """A fresh access token for ``user_id``, or ``None`` if none could be had.

    For applications that found no token in Redis. Never calls SID twice for one
    user at a time, however many processes ask at once.
    """
    result = refresh_user(runtime_module.get(), str(user_id), wait=wait, force=force)
    return result.access_token if result.outcome is Outcome.OK else None
