"""Settings are read once from the environment and explain what is wrong."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from shared import settings
from shared.errors import ConfigurationError

PRODUCTION = {
    "SIDTOKENS_SECRET_KEY": "s" * 40,
    "SIDTOKENS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def test_defaults_follow_the_interface() -> None:
    """Unset variables take the documented defaults."""
    loaded = settings.load(PRODUCTION)

    assert (
        loaded.database_url == "postgresql+psycopg://postgres@127.0.0.1:5432/sidtokens"
    )
    assert loaded.redis_url == "redis://127.0.0.1:6379/0"
    assert loaded.celery_broker_url == loaded.redis_url
    assert loaded.token_url == "https://auth.sid.ai/oauth/token"
    assert loaded.authorize_url == "https://me.sid.ai/api/oauth/authorize"
    assert loaded.scope == "query:data offline_access"
    assert loaded.refresh_ahead_seconds == 600
    assert loaded.scan_interval_seconds == 15
    assert loaded.cache_margin_seconds == 60
    assert loaded.rewarm_interval_seconds == 60
    assert loaded.after_connect_url == "/"


def test_public_url_defaults_to_the_redirect_uri_origin() -> None:
    """Without SIDTOKENS_PUBLIC_URL, browsers reach us where SID redirects them."""
    loaded = settings.load(
        {**PRODUCTION, "SID_REDIRECT_URI": "https://app.example/api/sid/callback"}
    )

    assert loaded.public_url == "https://app.example"


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        pytest.param(
            {"SIDTOKENS_ENCRYPTION_KEYS": PRODUCTION["SIDTOKENS_ENCRYPTION_KEYS"]},
            "SIDTOKENS_SECRET_KEY",
            id="no-secret-key",
        ),
        pytest.param(
            {"SIDTOKENS_SECRET_KEY": "x" * 40},
            "SIDTOKENS_ENCRYPTION_KEYS",
            id="no-encryption-keys",
        ),
        pytest.param(
            {**PRODUCTION, "SIDTOKENS_ENCRYPTION_KEYS": "not-a-key"},
            "SIDTOKENS_ENCRYPTION_KEYS",
            id="bad-key",
        ),
        pytest.param(
            {**PRODUCTION, "SIDTOKENS_CACHE_MARGIN_SECONDS": "soon"},
            "SIDTOKENS_CACHE_MARGIN_SECONDS",
            id="not-a-number",
        ),
        pytest.param(
            {**PRODUCTION, "SIDTOKENS_SCAN_INTERVAL_SECONDS": "-1"},
            "SIDTOKENS_SCAN_INTERVAL_SECONDS",
            id="below-minimum",
        ),
        pytest.param(
            {**PRODUCTION, "SID_TOKEN_URL": "auth.sid.ai/oauth/token"},
            "SID_TOKEN_URL",
            id="relative-url",
        ),
    ],
)
def test_a_bad_variable_is_named_with_what_to_set(
    env: dict[str, str], variable: str
) -> None:
    """A missing or malformed variable stops start-up with its name in the message."""
    with pytest.raises(ConfigurationError) as caught:
        settings.load(env)

    assert caught.value.variable == variable
    assert variable in str(caught.value)


def test_development_needs_no_secrets() -> None:
    """Development runs with a fixed key, plaintext storage and a dev client."""
    loaded = settings.load({"SIDTOKENS_ENV": "development"})

    assert loaded.is_development
    assert loaded.encryption_keys == ()
    assert loaded.client_id == settings.DEVELOPMENT_CLIENT_ID


def test_secrets_stay_out_of_the_repr() -> None:
    """Printing settings never shows a secret."""
    loaded = settings.load({**PRODUCTION, "SID_CLIENT_SECRET": "very-secret-value"})

    text = repr(loaded)

    assert "very-secret-value" not in text
    assert PRODUCTION["SIDTOKENS_SECRET_KEY"] not in text
    assert PRODUCTION["SIDTOKENS_ENCRYPTION_KEYS"] not in text


def test_the_migration_adds_only_what_is_missing(database_url: str) -> None:
    """Running the migration twice is harmless and leaves every column in place."""
    from sqlalchemy import inspect

    from shared.database import engine_for, migrate

    migrate(database_url)

    columns = {
        c["name"] for c in inspect(engine_for(database_url)).get_columns("users")
    }
    assert {
        "id",
        "sid_access_token",
        "sid_refresh_token",
        "sid_expires_at",
        "sid_status",
    } <= columns
