"""The operators' status page: users by state, refresh activity, failures, expiries.

It is protected by ``SIDTOKENS_STATUS_TOKEN``: without the setting the page does
not exist (404), and without the token a request is refused (401) with a form to
enter it. The form sets an HttpOnly cookie holding an HMAC of the token under the
signing key, so the token itself is never stored in the browser nor sent in a URL;
scripts may send ``Authorization: Bearer <token>`` instead.
"""

from __future__ import annotations

import hashlib
import hmac
import logging

from flask import Blueprint, Response, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import NotFound

from shared import status
from shared.database import unreachable_as_storage_error
from shared.runtime import Runtime
from web import expiry_chart, handles

log = logging.getLogger("sidtokens.web")

COOKIE = "sid_status"
COOKIE_MAX_AGE = 12 * 3600

blueprint = Blueprint("status_page", __name__)


def _cookie_value(runtime: Runtime, token: str) -> str:
    key = runtime.settings.secret_key.encode()
    return hmac.new(key, b"status-page\0" + token.encode(), hashlib.sha256).hexdigest()


def _expected_token(runtime: Runtime) -> str:
    token = runtime.settings.status_token
    if token is None:
        raise NotFound()
    return token


def _is_authorised(runtime: Runtime) -> bool:
    expected = _expected_token(runtime)
    bearer = request.headers.get("Authorization", "")
    if hmac.compare_digest(bearer.encode(), f"Bearer {expected}".encode()):
        return True
    cookie = request.cookies.get(COOKIE, "")
    return hmac.compare_digest(
        cookie.encode(), _cookie_value(runtime, expected).encode()
    )


def _refused(wrong: bool = False) -> Response:
    response = Response(render_template("status_login.html", wrong=wrong))
    response.status_code = 401
    return response


@blueprint.post("/status")
def log_in() -> ResponseReturnValue:
    """Check the entered token and remember it in a cookie for this browser."""
    current = handles.runtime()
    expected = _expected_token(current)
    entered = request.form.get("token", "")
    if not hmac.compare_digest(entered.encode(), expected.encode()):
        log.warning("status page: wrong token entered")
        return _refused(wrong=True)
    response = redirect(url_for("status_page.show"), code=303)
    response.set_cookie(
        COOKIE,
        _cookie_value(current, expected),
        max_age=COOKIE_MAX_AGE,
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/status",
    )
    return response


@blueprint.get("/status")
def show() -> ResponseReturnValue:
    """The snapshot and the 24-hour expiry chart, drawn on the server."""
    current = handles.runtime()
    if not _is_authorised(current):
        return _refused()
    from worker.rate_limit import rate_limit_for

    database = unreachable_as_storage_error(current.settings.database_url)
    with database, current.sessions() as session:
        snapshot = status.take(session)
        buckets = status.upcoming_expiries(session)
    paused = rate_limit_for(current.cache.client, current.settings).paused_for()
    return render_template(
        "status.html",
        snapshot=snapshot,
        provider=status.provider_health(current.settings.token_url, paused),
        chart=expiry_chart.render(buckets),
        peak=max((count for _, count in buckets), default=0),
    )
