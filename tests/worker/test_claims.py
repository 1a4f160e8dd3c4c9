"""Claims, leases and fences, straight against PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from shared.oauth import TokenGrant
from shared.runtime import Runtime
from shared.users import save_connection
from tests.worker.population import add_rows, rows
from worker import claims
from worker.claims import Claim

LEASE = timedelta(seconds=30)
NEEDED = timedelta(seconds=5)


def _grant(tag: str, lifetime: int = 3600) -> TokenGrant:
    return TokenGrant(
        access_token=f"access-{tag}",
        refresh_token=f"refresh-{tag}",
        expires_at=datetime.now(UTC) + timedelta(seconds=lifetime),
        lifetime=timedelta(seconds=lifetime),
    )


def _connected(runtime: Runtime, count: int, *, due: bool = True) -> list[str]:
    """Users with made-up tokens (no SID involved), due now unless told otherwise."""
    user_ids = [str(n) for n in range(1, count + 1)]
    add_rows(runtime, user_ids)
    with runtime.sessions.begin() as session:
        for user_id in user_ids:
            save_connection(
                session,
                user_id,
                _grant(user_id),
                cipher=runtime.cipher,
                settings=runtime.settings,
            )
        if due:
            session.execute(
                sa.text(
                    "UPDATE users SET sid_refresh_at = "
                    "now() - make_interval(secs => id::float)"
                )
            )
    return user_ids


def test_a_claim_takes_only_due_connected_users_oldest_first(runtime: Runtime) -> None:
    """The claim follows sid_refresh_at order and skips users that are not due."""
    user_ids = _connected(runtime, 5)
    with runtime.sessions.begin() as session:
        session.execute(
            sa.text(
                "UPDATE users SET sid_refresh_at = now() + interval '1 hour' "
                "WHERE id = 5"
            )
        )
        session.execute(
            sa.text("UPDATE users SET sid_status = 'disconnected' WHERE id = 4")
        )

    claimed = claims.claim_due(runtime.sessions, limit=2, lease=LEASE)
    rest = claims.claim_due(runtime.sessions, limit=10, lease=LEASE)

    assert [c.user_id for c in claimed] == ["3", "2"]
    assert [c.user_id for c in rest] == ["1"]
    assert user_ids[4] not in {c.user_id for c in claimed + rest}


def test_concurrent_claims_get_disjoint_users(runtime: Runtime) -> None:
    """While one claim's transaction holds rows, another skips them."""
    _connected(runtime, 10)
    holding = threading.Event()
    release = threading.Event()
    first: list[str] = []

    def slow_claim() -> None:
        with runtime.sessions.begin() as session:
            result = session.execute(
                sa.text(
                    "SELECT id::text FROM users WHERE sid_refresh_at <= now() "
                    "ORDER BY sid_refresh_at LIMIT 4 FOR NO KEY UPDATE SKIP LOCKED"
                )
            )
            first.extend(result.scalars())
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=slow_claim)
    thread.start()
    holding.wait(5)

    second = claims.claim_due(runtime.sessions, limit=10, lease=LEASE)

    release.set()
    thread.join()
    assert len(first) == 4
    assert len(second) == 6
    assert not set(first) & {c.user_id for c in second}


def test_a_claim_increments_the_version_and_sets_a_lease(runtime: Runtime) -> None:
    """Each claim bumps sid_refresh_version and moves the due time to the lease end."""
    [user_id] = _connected(runtime, 1)
    before = rows(runtime)[user_id].sid_refresh_version

    [claim] = claims.claim_due(runtime.sessions, limit=1, lease=LEASE)

    row = rows(runtime)[user_id]
    assert claim.version == before + 1 == row.sid_refresh_version
    assert row.sid_lease_until == row.sid_refresh_at
    assert row.sid_lease_until > datetime.now(UTC) + LEASE - timedelta(seconds=5)


def test_a_leased_user_cannot_be_claimed_again_until_the_lease_lapses(
    runtime: Runtime,
) -> None:
    """Neither the scan nor an on-demand claim takes a user with a live lease."""
    [user_id] = _connected(runtime, 1)
    claims.claim_due(runtime.sessions, limit=1, lease=LEASE)

    assert claims.claim_due(runtime.sessions, limit=1, lease=LEASE) == []
    assert claims.claim_user(runtime.sessions, user_id, lease=LEASE) is None
    with runtime.sessions.begin() as session:
        session.execute(
            sa.text("UPDATE users SET sid_lease_until = now(), sid_refresh_at = now()")
        )
    assert len(claims.claim_due(runtime.sessions, limit=1, lease=LEASE)) == 1


def test_a_claim_starts_once_and_hands_back_the_refresh_token(
    runtime: Runtime,
) -> None:
    """The start fence returns the decrypted token and closes behind itself."""
    [user_id] = _connected(runtime, 1)
    [claim] = claims.claim_due(runtime.sessions, limit=1, lease=LEASE)

    started = claims.start(
        runtime.sessions, claim, lease=LEASE, needed=NEEDED, cipher=runtime.cipher
    )
    again = claims.start(
        runtime.sessions, claim, lease=LEASE, needed=NEEDED, cipher=runtime.cipher
    )

    assert started is not None
    assert started.refresh_token == f"refresh-{user_id}"
    assert started.version == claim.version + 1
    assert "refresh-" not in repr(started)
    assert again is None


def test_a_claim_with_too_little_lease_left_does_not_start(runtime: Runtime) -> None:
    """A lease about to lapse could lapse during the request: no start."""
    _connected(runtime, 1)
    [claim] = claims.claim_due(runtime.sessions, limit=1, lease=timedelta(seconds=3))

    started = claims.start(
        runtime.sessions, claim, lease=LEASE, needed=NEEDED, cipher=runtime.cipher
    )

    assert started is None


def test_renewing_keeps_waiting_claims_alive_but_revives_no_lapsed_one(
    runtime: Runtime,
) -> None:
    """Renewal extends live leases of the given versions only."""
    _connected(runtime, 3)
    held = claims.claim_due(runtime.sessions, limit=3, lease=timedelta(seconds=3))
    lapsed, stale = held[0], Claim(held[1].user_id, held[1].version - 1)
    with runtime.sessions.begin() as session:
        session.execute(
            sa.text("UPDATE users SET sid_lease_until = now() WHERE id = :id"),
            {"id": lapsed.user_id},
        )

    renewed = claims.renew(runtime.sessions, [lapsed, stale, held[2]], lease=LEASE)

    assert renewed == 1
    assert rows(runtime)[held[2].user_id].sid_lease_until > datetime.now(UTC) + (
        LEASE - timedelta(seconds=5)
    )


def test_the_write_fence_drops_a_result_after_a_reconnect(runtime: Runtime) -> None:
    """A reconnect during the request moves the version: the refresh is not stored."""
    [user_id] = _connected(runtime, 1)
    [claim] = claims.claim_due(runtime.sessions, limit=1, lease=LEASE)
    started = claims.start(
        runtime.sessions, claim, lease=LEASE, needed=NEEDED, cipher=runtime.cipher
    )
    assert started is not None
    with runtime.sessions.begin() as session:
        save_connection(
            session,
            user_id,
            _grant("reconnected"),
            cipher=runtime.cipher,
            settings=runtime.settings,
        )

    stored = claims.finish(
        runtime.sessions,
        started,
        _grant("late"),
        refresh_at=datetime.now(UTC),
        cipher=runtime.cipher,
    )

    with runtime.sessions() as session:
        token = session.scalar(sa.text("SELECT sid_refresh_token FROM users"))
    assert stored is False
    assert token is not None
    assert runtime.cipher.decrypt(token) == "refresh-reconnected"


def test_putting_a_claim_back_makes_the_user_due_after_the_delay(
    runtime: Runtime,
) -> None:
    """put_back releases the lease, records the attempt and schedules the retry."""
    [user_id] = _connected(runtime, 1)
    [claim] = claims.claim_due(runtime.sessions, limit=1, lease=LEASE)

    claims.put_back(
        runtime.sessions,
        claim,
        delay=timedelta(seconds=60),
        attempts=3,
        reason="unavailable 503",
    )

    row = rows(runtime)[user_id]
    assert row.sid_lease_until is None
    assert row.sid_refresh_attempts == 3
    assert row.sid_last_error == "unavailable 503"
    assert row.sid_refresh_at > datetime.now(UTC) + timedelta(seconds=55)
    assert claims.claim_due(runtime.sessions, limit=1, lease=LEASE) == []


def test_the_backlog_counts_due_users_and_the_oldest_wait(runtime: Runtime) -> None:
    """Due, unclaimed, connected users are counted; the oldest waited longest."""
    _connected(runtime, 4)

    backlog = claims.backlog(runtime.sessions)

    assert backlog.due == 4
    assert timedelta(seconds=3.5) < backlog.oldest_lag < timedelta(seconds=60)


def test_the_scan_query_uses_the_partial_due_index(runtime: Runtime) -> None:
    """With many users and few due, the claim reads the partial index, not the table."""
    with runtime.sessions.begin() as session:
        session.execute(
            sa.text(
                "INSERT INTO users (id, sid_status, sid_refresh_at) "
                "SELECT n, CASE WHEN n % 10 = 0 THEN NULL ELSE 'connected' END, "
                "now() + make_interval(secs => n) - interval '50 seconds' "
                "FROM generate_series(1, 20000) AS n"
            )
        )
        session.execute(sa.text("ANALYZE users"))
        plan = session.execute(
            sa.text("EXPLAIN " + str(claims.CLAIM_DUE.text)),
            {"limit": 500, "lease": 30.0},
        ).scalars()
        text = "\n".join(plan)

    assert "ix_users_sid_refresh_due" in text, text
    assert "Seq Scan" not in text, text
