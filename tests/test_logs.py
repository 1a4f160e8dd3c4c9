"""Log lines carry their fields, as text or JSON, and never a secret."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from shared import logs, settings

SECRET_URL = "/api/sid/callback?code=abc123code&state=s3cr3tstate"


@pytest.fixture
def output() -> Iterator[io.StringIO]:
    """Route the root logger through :func:`logs.configure` into a buffer."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    stream = io.StringIO()
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved_handlers:
        root.addHandler(handler)
    root.setLevel(saved_level)


def _configure(stream: io.StringIO, **env: str) -> None:
    logs.configure(settings.load({"SIDTOKENS_ENV": "development", **env}))
    handler = logging.getLogger().handlers[0]
    assert isinstance(handler, logging.StreamHandler)
    handler.setStream(stream)


def test_json_lines_carry_the_fields_of_a_refresh(output: io.StringIO) -> None:
    """With SIDTOKENS_LOG_JSON each line is one object with the extra fields."""
    _configure(output, SIDTOKENS_LOG_JSON="1")

    logging.getLogger("sidtokens.worker").info(
        "refresh ok", extra={"user_id": "42", "outcome": "ok", "duration_ms": 83}
    )

    line = json.loads(output.getvalue().strip())
    assert line["message"] == "refresh ok"
    assert line["logger"] == "sidtokens.worker"
    assert line["level"] == "INFO"
    assert (line["user_id"], line["outcome"], line["duration_ms"]) == ("42", "ok", 83)


@pytest.mark.parametrize("json_lines", ["0", "1"], ids=["text", "json"])
def test_codes_states_and_bearer_tokens_are_masked(
    output: io.StringIO, json_lines: str
) -> None:
    """A library logging a callback URL or a header leaks neither, in either format."""
    _configure(output, SIDTOKENS_LOG_JSON=json_lines)

    logging.getLogger("werkzeug").info('"GET %s HTTP/1.1" 302', SECRET_URL)
    logging.getLogger("urllib3").warning("Authorization: Bearer sim_at_abcdef123")
    logging.getLogger("sidtokens.web").info("stored fernet:gAAAAABkZXNlY3JldA==")

    text = output.getvalue()
    for secret in ("abc123code", "s3cr3tstate", "sim_at_abcdef123", "gAAAAABk"):
        assert secret not in text
    assert "code=[redacted]" in text
