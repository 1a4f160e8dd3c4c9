"""A small page to try the flow by hand: demo users with Connect and Disconnect.

Registered only when ``SIDTOKENS_DEMO`` is on (the default in development). It
makes sure users 1 to 5 exist, then lists the first few users with their status,
when their token expires and whether Redis holds it; never a token.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import sqlalchemy as sa
from flask import Blueprint, render_template, request
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from shared.database import unreachable_as_storage_error
from shared.models import User
from shared.runtime import Runtime
from web import handles, links

DEMO_USER_IDS = ("1", "2", "3", "4", "5")
LISTED = 10
#: What the page says after a redirect back; anything else in the query is ignored.
BANNERS: dict[tuple[str | None, str | None], str] = {
    ("connected", None): "Connected: the access token is now in Redis.",
    ("disconnected", None): "Disconnected: the token was revoked and removed.",
    ("error", "access_denied"): "The connection was declined on SID's page.",
    ("error", "provider_refused"): "SID refused the connection; try connecting again.",
    ("error", "provider_unavailable"): "SID did not answer; try again in a minute.",
}

blueprint = Blueprint("demo", __name__)


@dataclasses.dataclass(frozen=True)
class DemoUser:
    """One row of the demo table: what can be shown about a user, and its links."""

    id: str
    status: str
    expires_at: datetime | None
    published: bool
    connect_url: str
    disconnect_url: str


def _seed(session: Session) -> None:
    """Create users 1 to 5 when the id column takes numbers (ours is a bigint)."""
    rows = [{"id": user_id} for user_id in DEMO_USER_IDS]
    try:
        session.execute(insert(User).values(rows).on_conflict_do_nothing())
        session.commit()
    except DataError:
        session.rollback()


def _demo_users(runtime: Runtime) -> list[DemoUser]:
    database = unreachable_as_storage_error(runtime.settings.database_url)
    with database, runtime.sessions() as session:
        _seed(session)
        users = session.scalars(sa.select(User).order_by(User.id).limit(LISTED)).all()
    missing = set(runtime.cache.missing([user.id for user in users]))
    settings = runtime.settings
    return [
        DemoUser(
            id=user.id,
            status=user.sid_status or "never connected",
            expires_at=user.sid_expires_at,
            published=user.id not in missing,
            connect_url=links.connect_url(user.id, settings),
            disconnect_url=links.disconnect_url(user.id, settings),
        )
        for user in users
    ]


@blueprint.get("/")
def index() -> str:
    """The demo users, and what just happened when SID's flow brought us back."""
    outcome = (request.args.get("sid"), request.args.get("reason"))
    return render_template(
        "demo.html",
        users=_demo_users(handles.runtime()),
        banner=BANNERS.get(outcome),
        failed=outcome[0] == "error",
    )
