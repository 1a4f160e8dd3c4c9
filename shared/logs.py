"""Logging for every sid-tokens process: plain or JSON lines, and never a secret.

Loggers are named per component (``sidtokens.web``, ``sidtokens.worker``, ...).
A filter on the root handler scrubs what must never be written even when a
library logs it for us: OAuth query parameters (``code``, ``state``, tokens) in
logged URLs, bearer tokens and anything shaped like a Fernet ciphertext.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime

from shared.settings import Settings

_SENSITIVE_PARAMS = re.compile(
    r"(?i)\b(code|state|access_token|refresh_token|id_token|client_secret|token|"
    r"code_verifier|code_challenge|t)=([^&\s\"']+)"
)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_FERNET = re.compile(r"fernet:[A-Za-z0-9_=-]+")

#: Attributes every LogRecord has; anything else was passed in ``extra`` and is a field.
_STANDARD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}


def redact(text: str) -> str:
    """``text`` with OAuth parameters, bearer credentials and ciphertext masked."""
    text = _SENSITIVE_PARAMS.sub(lambda m: f"{m.group(1)}=[redacted]", text)
    text = _BEARER.sub(lambda m: f"{m.group(1)} [redacted]", text)
    return _FERNET.sub("fernet:[redacted]", text)


class RedactingFilter(logging.Filter):
    """Passes each record's message through :func:`redact` before handlers see it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line with the time, level, logger, message and fields."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(fields(record))
        if record.exc_info:
            line["error"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``time level logger message key=value ...`` for people reading a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extra = " ".join(f"{key}={value}" for key, value in fields(record).items())
        return f"{text} {extra}" if extra else text

    def formatException(self, ei: object) -> str:
        return redact(super().formatException(ei))  # type: ignore[arg-type]


def fields(record: logging.LogRecord) -> dict[str, object]:
    """The structured fields a caller passed with ``extra=``."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _STANDARD_ATTRIBUTES and not key.startswith("_")
    }


def configure(settings: Settings) -> None:
    """Send every logger's records through one redacting handler on stderr."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if settings.log_json else TextFormatter())
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level)
    # urllib3 logs every request line at DEBUG, with the query string.
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
