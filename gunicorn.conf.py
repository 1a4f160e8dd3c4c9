"""Gunicorn settings for the web tier, read by ``gunicorn 'web:create_app()'``.

The bind address is ``SIDTOKENS_WEB_BIND`` when set, else ``0.0.0.0:$PORT`` (the
platform convention), else ``127.0.0.1:8000``. Anything else can be overridden
with ``GUNICORN_CMD_ARGS`` or command-line flags, as usual.

The access log names the path without its query string: the callback's query
carries the authorization code and the state, and the links' carries their signed
token. The error log's lines are scrubbed by the same filter as our own logs.
"""

from __future__ import annotations

import logging
import os

from shared.logs import RedactingFilter


def _bind() -> str:
    explicit = os.environ.get("SIDTOKENS_WEB_BIND", "").strip()
    if explicit:
        return explicit
    port = os.environ.get("PORT", "").strip()
    return f"0.0.0.0:{port}" if port else "127.0.0.1:8000"


bind = [_bind()]
# Threads keep a slow answer from SID from holding up every other request.
worker_class = "gthread"
threads = 8
timeout = 30
graceful_timeout = 20
# The control socket is one fixed path per user: two servers on a host would share it.
control_socket_disable = True
accesslog = "-"
access_log_format = '%(h)s "%(m)s %(U)s %(H)s" %(s)s %(B)s %(M)sms'

for _name in ("gunicorn.error", "gunicorn.access"):
    _logger = logging.getLogger(_name)
    if not any(isinstance(f, RedactingFilter) for f in _logger.filters):
        _logger.addFilter(RedactingFilter())
