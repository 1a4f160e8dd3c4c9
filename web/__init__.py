"""The web tier: the connect flow, disconnect, probes, metrics and the demo page.

``gunicorn 'web:create_app()'`` runs it in production and ``flask --app web run``
in development; both build it from the environment. Routes:

- ``GET /api/sid/connect?t=…``: a signed connect link; redirects to SID.
- ``GET /api/sid/callback``: SID's redirect back; stores and publishes the tokens.
- ``GET|POST /api/sid/disconnect?t=…``: a signed disconnect link; GET asks for
  confirmation, POST revokes at SID and clears the connection.
- ``GET /healthz``, ``GET /readyz``, ``GET /metrics``.
- ``GET|POST /status``: the operators' page, behind ``SIDTOKENS_STATUS_TOKEN``.
- ``GET /``: the demo page, only when ``SIDTOKENS_DEMO`` is on.

No secret goes into Flask's config (whose ``repr`` prints ``SECRET_KEY``): links
are signed with itsdangerous directly from the settings.
"""

from __future__ import annotations

import logging

from flask import Flask

from shared import logs
from shared import settings as settings_module
from shared.errors import ConfigurationError
from shared.runtime import Runtime
from shared.settings import Settings, origin
from web import api, demo, handles, operations, pages, status_page

#: Loggers of the servers in front of us, which write request lines with queries.
SERVER_LOGGERS = ("werkzeug", "gunicorn.error", "gunicorn.access")


def _check_cookie_origin(settings: Settings) -> None:
    """The flow's cookie is set on the connect link's origin, read on the callback's."""
    if settings.public_url is None or settings.redirect_uri is None:
        return
    if origin(settings.public_url) != origin(settings.redirect_uri):
        raise ConfigurationError(
            f"SIDTOKENS_PUBLIC_URL ({origin(settings.public_url)}) and "
            f"SID_REDIRECT_URI ({origin(settings.redirect_uri)}) have different "
            "origins, so the browser could never finish a connect it started; serve "
            "both from one origin",
            variable="SIDTOKENS_PUBLIC_URL",
        )


def _redact_server_logs() -> None:
    """Scrub request lines the servers log, whatever handler they end up on."""
    for name in SERVER_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, logs.RedactingFilter) for f in logger.filters):
            logger.addFilter(logs.RedactingFilter())


def create_app(settings: Settings | None = None) -> Flask:
    """Build the web tier from ``settings``, read from the environment when omitted.

    Reading the environment is what the servers do, and then logging is set up
    too; a caller that passes its own settings (a test, a host application) keeps
    its own logging.
    """
    if settings is None:
        settings = settings_module.load()
        logs.configure(settings)
    _check_cookie_origin(settings)
    _redact_server_logs()

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 64 * 1024
    handles.install(app, Runtime.from_settings(settings))
    pages.install(app, settings)
    app.register_blueprint(api.blueprint)
    app.register_blueprint(operations.blueprint)
    app.register_blueprint(status_page.blueprint)
    if settings.demo:
        app.register_blueprint(demo.blueprint)
    return app
