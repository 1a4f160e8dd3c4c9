"""A snapshot for operators: ``sidtokens status`` and the status page.

Every figure is read in one query over ``users`` (the counts) and one over the due
index (the upcoming expiries), so the snapshot is cheap enough to take on every
page view.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.models import Status, User

#: "Due soon" means due within this window.
DUE_SOON = timedelta(minutes=5)


@dataclasses.dataclass(frozen=True)
class Snapshot:
    taken_at: datetime
    by_status: dict[str, int]
    due_now: int
    due_soon: int
    failing: int
    expired: int
    last_refresh_at: datetime | None
    refreshed_last_minute: int
    failures: dict[str, int]

    def as_json(self) -> dict[str, object]:
        return {
            "taken_at": self.taken_at.isoformat(),
            "users": self.by_status,
            "due_now": self.due_now,
            "due_soon": self.due_soon,
            "failing": self.failing,
            "expired": self.expired,
            "last_refresh_at": self.last_refresh_at.isoformat()
            if self.last_refresh_at
            else None,
            "refreshed_last_minute": self.refreshed_last_minute,
            "failures": self.failures,
        }


def take(session: Session, now: datetime | None = None) -> Snapshot:
    """Count users by state, due work, failures and recent refreshes."""
    now = now or datetime.now(UTC)
    connected = User.sid_status == Status.CONNECTED.value
    counts = session.execute(
        sa.select(
            sa.func.coalesce(User.sid_status, "never_connected").label("status"),
            sa.func.count().label("users"),
            sa.func.count().filter(connected, User.sid_refresh_at <= now),
            sa.func.count().filter(connected, User.sid_refresh_at <= now + DUE_SOON),
            sa.func.count().filter(connected, User.sid_refresh_attempts > 0),
            sa.func.count().filter(connected, User.sid_expires_at <= now),
            sa.func.max(User.sid_refreshed_at),
            sa.func.count().filter(User.sid_refreshed_at > now - timedelta(minutes=1)),
        ).group_by(sa.text("status"))
    ).all()
    failures = session.execute(
        sa.select(User.sid_last_error, sa.func.count())
        .where(connected, User.sid_last_error.is_not(None))
        .group_by(User.sid_last_error)
        .order_by(sa.func.count().desc())
        .limit(10)
    ).all()
    last_refreshes = [row[6] for row in counts if row[6] is not None]
    return Snapshot(
        taken_at=now,
        by_status={row[0]: row[1] for row in counts},
        due_now=sum(row[2] for row in counts),
        due_soon=sum(row[3] for row in counts),
        failing=sum(row[4] for row in counts),
        expired=sum(row[5] for row in counts),
        last_refresh_at=max(last_refreshes) if last_refreshes else None,
        refreshed_last_minute=sum(row[7] for row in counts),
        failures={str(reason): count for reason, count in failures},
    )


def upcoming_expiries(
    session: Session,
    *,
    now: datetime | None = None,
    horizon: timedelta = timedelta(hours=24),
    buckets: int = 48,
) -> list[tuple[datetime, int]]:
    """How many connected tokens expire in each slice of the next ``horizon``."""
    now = now or datetime.now(UTC)
    width = horizon / buckets
    bucket = sa.func.floor(
        sa.extract("epoch", User.sid_expires_at - now) / width.total_seconds()
    ).label("bucket")
    rows = session.execute(
        sa.select(bucket, sa.func.count())
        .where(
            User.sid_status == Status.CONNECTED.value,
            User.sid_expires_at > now,
            User.sid_expires_at <= now + horizon,
        )
        .group_by(bucket)
    ).all()
    counts = {int(index): total for index, total in rows}
    return [(now + width * index, counts.get(index, 0)) for index in range(buckets)]


def provider_health(token_url: str, paused_for: timedelta) -> dict[str, str]:
    """What operators need to know about SID right now: where, and whether paused."""
    seconds = paused_for.total_seconds()
    return {
        "token_url": token_url,
        "state": f"paused for {seconds:.0f}s (rate limit or rejected client)"
        if seconds > 0
        else "calls allowed",
    }


def render_table(snapshot: Snapshot, provider: dict[str, str]) -> str:
    """The snapshot as a small aligned table for a terminal."""
    rows: list[tuple[str, str]] = [
        *(
            (f"users {status}", str(count))
            for status, count in sorted(snapshot.by_status.items())
        ),
        ("due now", str(snapshot.due_now)),
        ("due within 5 min", str(snapshot.due_soon)),
        ("failing (retrying)", str(snapshot.failing)),
        ("connected but expired", str(snapshot.expired)),
        ("refreshed in the last minute", str(snapshot.refreshed_last_minute)),
        (
            "last refresh",
            snapshot.last_refresh_at.isoformat(timespec="seconds")
            if snapshot.last_refresh_at
            else "never",
        ),
        *(
            (f"failure: {reason}", str(count))
            for reason, count in snapshot.failures.items()
        ),
        *((f"provider {key}", value) for key, value in provider.items()),
    ]
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)
