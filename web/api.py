"""The routes a browser goes through: connect, SID's callback, and disconnect.

Every request that belongs to no live flow (a bad link, an unknown or used state,
another browser) raises :class:`~shared.errors.RequestRejected` before anything
is written, and gets a 4xx page. Once the state is valid, every ending is a
redirect to ``SIDTOKENS_AFTER_CONNECT_URL``, except a failed database write, which
gets an error page. ``SIDTOKENS_AFTER_CONNECT_URL`` is operator configuration:
no redirect target is ever taken from the request.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from flask import Blueprint, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.wrappers import Response

from shared.errors import ProviderError, RequestRejected, StorageError
from shared.metrics import CONNECTS
from shared.runtime import Runtime
from shared.settings import Settings
from shared.users import UnknownUser
from web import connection, handles, links
from web.connection import ConnectOutcome, ConnectResult
from web.links import TOKEN_PARAMETER, Purpose
from web.oauth_state import BROWSER_COOKIE, BROWSER_COOKIE_PATH, Flow, browser_nonce
from web.pages import REVOKE_FAILED, STORAGE_FAILED, UNKNOWN_USER, render_problem

log = logging.getLogger("sidtokens.web")

blueprint = Blueprint("api", __name__, url_prefix="/api/sid")


def with_query(url: str, params: Mapping[str, str]) -> str:
    """``url`` with ``params`` appended to whatever query it already has."""
    parts = urlsplit(url)
    added = urlencode(params, quote_via=quote)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def after_connect(settings: Settings, outcome: ConnectOutcome) -> str:
    """Where the browser goes when a flow with a valid state ends."""
    if outcome is ConnectOutcome.CONNECTED:
        return with_query(settings.after_connect_url, {"sid": "connected"})
    return with_query(
        settings.after_connect_url, {"sid": "error", "reason": str(outcome)}
    )


def _is_https(settings: Settings) -> bool:
    return request.is_secure or (settings.public_url or "").startswith("https://")


def _bind_browser(response: Response, nonce: str, settings: Settings) -> None:
    response.set_cookie(
        BROWSER_COOKIE,
        nonce,
        max_age=settings.oauth_flow_max_age_seconds,
        path=BROWSER_COOKIE_PATH,
        secure=_is_https(settings),
        httponly=True,
        samesite="Lax",
    )


@blueprint.get("/connect")
def connect() -> ResponseReturnValue:
    """Check the signed link, start a flow bound to this browser, send it to SID."""
    current = handles.runtime()
    token = request.args.get(TOKEN_PARAMETER)
    user_id = links.read(token, Purpose.CONNECT, current.settings)
    if not connection.user_exists(current, user_id):
        raise UnknownUser(user_id)

    nonce = browser_nonce(request.cookies.get(BROWSER_COOKIE))
    started = handles.flows().begin(user_id, nonce)
    location = current.client.authorize_url(
        state=started.state, code_challenge=started.pkce.challenge
    )
    response = redirect(location, code=302)
    _bind_browser(response, nonce, current.settings)
    log.debug("connect flow started", extra={"user_id": user_id})
    return response


def _report_connect(
    user_id: str,
    outcome: str,
    started: float,
    *,
    published: bool | None = None,
    error: str | None = None,
) -> None:
    """The one log line (and the metric) of a callback with a valid state."""
    CONNECTS.labels(outcome=outcome).inc()
    fields: dict[str, object] = {
        "user_id": user_id,
        "outcome": outcome,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    if published is not None:
        fields["published"] = published
    if error:
        fields["error"] = error
    # A user's no and a clean connect are routine; every other ending wants a look.
    routine = outcome == ConnectOutcome.ACCESS_DENIED or (
        outcome == ConnectOutcome.CONNECTED and not error
    )
    level = logging.INFO if routine else logging.WARNING
    log.log(level, "connect %s", outcome, extra=fields)


def _finish(current: Runtime, flow: Flow) -> ConnectResult:
    """Read SID's answer from the callback's query and act on it."""
    error = request.args.get("error")
    if error is not None:
        refused = "access_denied" if error == "access_denied" else "provider_refused"
        return ConnectResult(
            ConnectOutcome(refused), detail=f"SID answered error={error[:64]!r}"
        )
    code = request.args.get("code")
    if not code:
        return ConnectResult(
            ConnectOutcome.PROVIDER_REFUSED,
            detail="SID redirected back with neither a code nor an error",
        )
    return connection.connect(current, flow.user_id, code, flow.verifier)


@blueprint.get("/callback")
def callback() -> ResponseReturnValue:
    """SID's redirect back: check the state and the browser, exchange, store."""
    started = time.monotonic()
    current = handles.runtime()
    try:
        flow = handles.flows().consume(
            request.args.get("state"), request.cookies.get(BROWSER_COOKIE)
        )
    except RequestRejected:
        CONNECTS.labels(outcome="rejected").inc()
        raise

    try:
        result = _finish(current, flow)
    except StorageError as exc:
        _report_connect(flow.user_id, "storage_failed", started, error=str(exc))
        return render_problem(STORAGE_FAILED)
    except UnknownUser as exc:
        _report_connect(flow.user_id, "unknown_user", started, error=str(exc))
        return render_problem(UNKNOWN_USER)

    connected = result.outcome is ConnectOutcome.CONNECTED
    _report_connect(
        flow.user_id,
        result.outcome,
        started,
        published=result.published if connected else None,
        error=result.detail,
    )
    return redirect(after_connect(current.settings, result.outcome), code=302)


@blueprint.route("/disconnect", methods=["GET", "POST"])
def disconnect() -> ResponseReturnValue:
    """GET asks for confirmation (link scanners must not disconnect); POST does it."""
    current = handles.runtime()
    token = request.args.get(TOKEN_PARAMETER)
    user_id = links.read(token, Purpose.DISCONNECT, current.settings)
    if request.method == "GET":
        if not connection.user_exists(current, user_id):
            raise UnknownUser(user_id)
        action = with_query(url_for(".disconnect"), {TOKEN_PARAMETER: token or ""})
        return render_template("disconnect.html", user_id=user_id, action=action)

    try:
        connection.disconnect(current, user_id)
    except ProviderError:
        return render_problem(REVOKE_FAILED)
    except StorageError:
        return render_problem(STORAGE_FAILED)
    except UnknownUser:
        return render_problem(UNKNOWN_USER)

    done = with_query(current.settings.after_connect_url, {"sid": "disconnected"})
    return redirect(done, code=302)
