"""The error page every failure renders, and the headers every response carries.

Each failure a person can meet in a browser has one :class:`Problem`: a status,
what happened in plain words, and what to do next. The exception's own message,
written for operators, goes to the log and never to the page.
"""

from __future__ import annotations

import dataclasses
import logging

from flask import Flask, Response, render_template, request
from werkzeug.exceptions import HTTPException

from shared.errors import ConfigurationError, RequestRejected, StorageError
from shared.settings import Settings, origin
from shared.users import UnknownUser

log = logging.getLogger("sidtokens.web")

START_AGAIN = (
    "Go back to the application and use its Connect to SID button again; it makes "
    "a fresh link."
)


@dataclasses.dataclass(frozen=True)
class Problem:
    """What a person sees when something fails: status, headline, cause, next step."""

    status: int
    title: str
    explanation: str
    next_step: str


_REJECTIONS = {
    "link_missing": Problem(
        400,
        "This link is incomplete",
        "The address is missing the signed part that says who the link is for.",
        START_AGAIN,
    ),
    "link_invalid": Problem(
        403,
        "This link is not valid",
        "It was not made by this application, or it was changed on the way.",
        START_AGAIN,
    ),
    "link_expired": Problem(
        410,
        "This link has expired",
        "Links to connect or disconnect work for a short time only.",
        START_AGAIN,
    ),
    "state_missing": Problem(
        400,
        "No connection is in progress",
        "This page was opened without the details SID sends back after approval.",
        START_AGAIN,
    ),
    "state_unknown": Problem(
        400,
        "This connection attempt is over",
        "It was completed already, it took too long, or it was not started here. "
        "Nothing was changed.",
        START_AGAIN,
    ),
    "browser_mismatch": Problem(
        403,
        "This connection was started in another browser",
        "For your safety, a connection is finished only in the browser that "
        "started it. Nothing was changed.",
        "Open the application's Connect to SID link in this browser and approve again.",
    ),
}
UNKNOWN_USER = Problem(
    404,
    "This user is not known",
    "The link names a user this application has no record of.",
    "Ask the application for a new link.",
)
STORAGE_FAILED = Problem(
    503,
    "We could not finish this right now",
    "Our database or cache did not answer.",
    "Try again in a minute. If it keeps happening, tell the application's operator.",
)
REVOKE_FAILED = Problem(
    503,
    "SID did not confirm the disconnect",
    "SID could not be reached or refused the request, so nothing was changed: "
    "the account is still connected.",
    "Try again in a minute.",
)
MISCONFIGURED = Problem(
    500,
    "This application is not set up correctly",
    "Its connection to SID is missing a setting.",
    "Tell the application's operator; the server log names the setting.",
)
UNEXPECTED = Problem(
    500,
    "Something went wrong",
    "The server failed while handling this page.",
    "Try again in a minute. If it keeps happening, tell the application's operator.",
)


def render_problem(problem: Problem) -> Response:
    response = Response(render_template("error.html", problem=problem))
    response.status_code = problem.status
    return response


def _http_problem(error: HTTPException) -> Problem:
    status = error.code or 500
    return Problem(
        status,
        f"{status} {error.name}",
        "There is nothing at this address for this kind of request.",
        "Check the address, or go back to the application.",
    )


def _rejected(error: RequestRejected) -> Response:
    log.info(
        "rejected %s: %s",
        request.path,
        error.reason,
        extra={"path": request.path, "reason": error.reason},
    )
    problem = _REJECTIONS.get(error.reason, UNEXPECTED)
    return render_problem(dataclasses.replace(problem, status=error.status))


def _storage_failed(error: StorageError) -> Response:
    log.warning("request failed: %s", error, extra={"path": request.path})
    return render_problem(STORAGE_FAILED)


def _misconfigured(error: ConfigurationError) -> Response:
    log.error("request failed: %s", error, extra={"path": request.path})
    return render_problem(MISCONFIGURED)


def _unknown_user(error: UnknownUser) -> Response:
    return render_problem(UNKNOWN_USER)


def _http_error(error: HTTPException) -> Response:
    return render_problem(_http_problem(error))


def _unexpected(error: Exception) -> Response:
    log.error("unexpected error on %s", request.path, exc_info=error)
    return render_problem(UNEXPECTED)


def content_security_policy(settings: Settings) -> str:
    """Nothing but our stylesheet; forms may post here and redirect to the app."""
    targets = ["'self'"]
    for url in (settings.after_connect_url, settings.public_url or ""):
        target = origin(url)
        if target and target not in targets:
            targets.append(target)
    return "; ".join(
        [
            "default-src 'none'",
            "style-src 'self'",
            "img-src 'self'",
            f"form-action {' '.join(targets)}",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ]
    )


def install(app: Flask, settings: Settings) -> None:
    """Register the error pages and the headers every response gets."""
    policy = content_security_policy(settings)

    @app.after_request
    def protect(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", policy)
        headers["X-Content-Type-Options"] = "nosniff"
        # The callback's URL carries the code: no page may send it on as a Referer.
        headers["Referrer-Policy"] = "no-referrer"
        headers["X-Frame-Options"] = "DENY"
        headers["Cross-Origin-Opener-Policy"] = "same-origin"
        if request.endpoint != "static":
            headers["Cache-Control"] = "no-store"
        return response

    app.register_error_handler(RequestRejected, _rejected)
    app.register_error_handler(UnknownUser, _unknown_user)
    app.register_error_handler(StorageError, _storage_failed)
    app.register_error_handler(ConfigurationError, _misconfigured)
    app.register_error_handler(HTTPException, _http_error)
    app.register_error_handler(Exception, _unexpected)
