"""A small page to try the flow by hand: demo users with Connect and Disconnect.

Registered only when ``SIDTOKENS_DEMO`` is on (the default in development). It
makes sure users 1 to 5 exist, then lists the first few users with their status,
when their token was last refreshed, when it expires and whether Redis holds it;
never a token. The page reloads every ten seconds so refreshes can be watched, and
its Query button asks SID's query API with the warm token through
:mod:`shared.reader`, as an application would.
"""

from __future__ import annotations

import dataclasses
import logging
from datetime import datetime
from typing import Any

import requests
import sqlalchemy as sa
from flask import Blueprint, render_template, request
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.exc import DataError
from sqlalchemy.orm import Session

from shared.database import unreachable_as_storage_error
from shared.models import User
from shared.reader import NotConnected, QueryFailed, SidReader
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

log = logging.getLogger("sidtokens.web")
blueprint = Blueprint("demo", __name__)


@dataclasses.dataclass(frozen=True)
class DemoUser:
    """One row of the demo table: what can be shown about a user, and its links."""

    id: str
    status: str
    refreshed_at: datetime | None
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
            refreshed_at=user.sid_refreshed_at,
            expires_at=user.sid_expires_at,
            published=user.id not in missing,
            connect_url=links.connect_url(user.id, settings),
            disconnect_url=links.disconnect_url(user.id, settings),
        )
        for user in users
    ]


@dataclasses.dataclass(frozen=True)
class Answer:
    """What the Query button got from SID, through the application reader."""

    user_id: str
    query: str
    results: list[dict[str, Any]]
    error: str | None = None


def _ask_sid(runtime: Runtime, user_id: str, text: str) -> Answer:
    """Query SID for the user the way an application would: see shared.reader."""
    from worker.on_demand import refresh_user

    def refresh(user: str, force: bool) -> str | None:
        return refresh_user(runtime, user, wait=5, force=force).access_token

    reader = SidReader(
        runtime.cache.client,
        runtime.settings.query_url,
        refresh,
        timeout=runtime.settings.http_timeout_seconds,
    )
    try:
        found = reader.query(user_id, text, limit=3)
    except NotConnected:
        return Answer(user_id, text, [], "This user must connect to SID again.")
    except (QueryFailed, requests.RequestException) as exc:
        log.warning("demo query failed: %s", exc, extra={"user_id": user_id})
        return Answer(user_id, text, [], "SID's query API did not answer; try again.")
    return Answer(user_id, text, list(found.get("results", [])))


@blueprint.get("/")
def index() -> str:
    """The demo users, and what just happened when SID's flow brought us back."""
    outcome = (request.args.get("sid"), request.args.get("reason"))
    return render_template(
        "demo.html",
        users=_demo_users(handles.runtime()),
        banner=BANNERS.get(outcome),
        failed=outcome[0] == "error",
        answer=None,
    )


@blueprint.post("/demo/query/<user_id>")
def query(user_id: str) -> str:
    """Send a query to SID's query API with the user's warm token."""
    current = handles.runtime()
    text = (request.form.get("query") or "quarterly planning")[:200]
    return render_template(
        "demo.html",
        users=_demo_users(current),
        banner=None,
        failed=False,
        answer=_ask_sid(current, user_id, text),
    )
