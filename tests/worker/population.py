"""Connected users for worker tests, made without a browser.

Each user gets real tokens from the simulator (consent plus code exchange, as
:meth:`Simulator.issue_tokens` does), stored with :func:`shared.users.save_connection`
and published to Redis, exactly as the web tier's callback would.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import requests
import sqlalchemy as sa

from shared.oauth import TokenGrant
from shared.runtime import Runtime
from shared.users import save_connection
from tests.plugins.simulator import Simulator

ISSUING_THREADS = 4


def sid_user(user_id: str) -> str:
    """The SID account a test user is connected to."""
    return f"sid-{user_id}"


def grant_from(tokens: dict[str, Any]) -> TokenGrant:
    lifetime = timedelta(seconds=int(tokens["expires_in"]))
    return TokenGrant(
        access_token=tokens["access_token"],
        refresh_token=tokens["refresh_token"],
        expires_at=datetime.now(UTC) + lifetime,
        lifetime=lifetime,
        scope=tokens.get("scope"),
    )


def _issue_all(simulator: Simulator, user_ids: list[str]) -> list[TokenGrant]:
    """Issue tokens in a few threads, each with its own HTTP session.

    Each grant's expiry is taken as its answer arrives, as the product does.
    """

    def issue(chunk: list[str]) -> list[TokenGrant]:
        mine = copy.copy(simulator)
        mine.http = requests.Session()
        try:
            return [grant_from(mine.issue_tokens(sid_user(u))) for u in chunk]
        finally:
            mine.http.close()

    chunks = [user_ids[start::ISSUING_THREADS] for start in range(ISSUING_THREADS)]
    with ThreadPoolExecutor(ISSUING_THREADS) as pool:
        issued = list(pool.map(issue, chunks))
    by_user: dict[str, TokenGrant] = {}
    for chunk, tokens in zip(chunks, issued, strict=True):
        by_user.update(zip(chunk, tokens, strict=True))
    return [by_user[user_id] for user_id in user_ids]


def add_rows(runtime: Runtime, user_ids: Iterable[str]) -> None:
    with runtime.sessions.begin() as session:
        session.execute(
            sa.text("INSERT INTO users (id) VALUES (:id) ON CONFLICT DO NOTHING"),
            [{"id": user_id} for user_id in user_ids],
        )


def connect(
    simulator: Simulator, runtime: Runtime, count: int, *, first: int = 1
) -> list[str]:
    """Connect ``count`` users with ids from ``first``; returns their ids."""
    user_ids = [str(first + offset) for offset in range(count)]
    add_rows(runtime, user_ids)
    grants = _issue_all(simulator, user_ids)
    with runtime.sessions.begin() as session:
        for user_id, grant in zip(user_ids, grants, strict=True):
            save_connection(
                session,
                user_id,
                grant,
                cipher=runtime.cipher,
                settings=runtime.settings,
            )
    runtime.cache.publish_many(
        (user_id, grant.access_token, grant.expires_at)
        for user_id, grant in zip(user_ids, grants, strict=True)
    )
    return user_ids


def make_due(runtime: Runtime, user_ids: list[str] | None = None) -> None:
    """Make users due for refresh right now (all connected users by default)."""
    statement = "UPDATE users SET sid_refresh_at = now() WHERE sid_status = 'connected'"
    with runtime.sessions.begin() as session:
        if user_ids is None:
            session.execute(sa.text(statement))
        else:
            session.execute(
                sa.text(statement + " AND id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": user_ids},
            )


def rows(runtime: Runtime) -> dict[str, Any]:
    """Every user's bookkeeping columns, by id."""
    with runtime.sessions.begin() as session:
        result = session.execute(
            sa.text(
                "SELECT id::text AS user_id, sid_status, sid_refresh_version, "
                "sid_refresh_attempts, sid_last_error, sid_refreshed_at, "
                "sid_connected_at, sid_refresh_at, sid_lease_until, sid_expires_at "
                "FROM users"
            )
        )
        return {row.user_id: row for row in result}
