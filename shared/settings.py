"""Typed settings, read once from the environment.

Every tier builds itself from one :class:`Settings` value. A missing or malformed
variable raises :class:`~shared.errors.ConfigurationError` naming the variable and
what to set, so a misconfigured process stops at start-up instead of at its first
refresh.

``SIDTOKENS_ENV=development`` relaxes two requirements for local work: without
``SIDTOKENS_SECRET_KEY`` a fixed development key signs URLs, and without
``SIDTOKENS_ENCRYPTION_KEYS`` tokens are stored as plaintext. Neither is allowed in
any other environment.
"""

from __future__ import annotations

import dataclasses
import functools
import os
from collections.abc import Callable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

from shared.errors import ConfigurationError

T = TypeVar("T")

DEVELOPMENT_SECRET_KEY = "development-only-secret-key-never-use-in-production"  # noqa: S105
DEVELOPMENT_CLIENT_ID = "sidtokens-dev-client"
DEVELOPMENT_CLIENT_SECRET = "sidtokens-dev-secret"  # noqa: S105
DEVELOPMENT_REDIRECT_URI = "http://127.0.0.1:5000/api/sid/callback"


@dataclasses.dataclass(frozen=True, repr=False)
class Settings:
    """Everything a process needs to know, with secrets kept out of ``repr``."""

    environment: str
    database_url: str
    redis_url: str
    celery_broker_url: str
    client_id: str | None
    client_secret: str | None
    redirect_uri: str | None
    authorize_url: str
    token_url: str
    revoke_url: str
    query_url: str
    scope: str
    audience: str | None
    authorize_extra_params: tuple[tuple[str, str], ...]
    secret_key: str
    encryption_keys: tuple[str, ...]
    public_url: str | None
    after_connect_url: str
    refresh_ahead_seconds: int
    scan_interval_seconds: float
    cache_margin_seconds: int
    rewarm_interval_seconds: float
    connect_url_max_age_seconds: int
    oauth_flow_max_age_seconds: int
    http_timeout_seconds: float
    token_rate_limit_per_second: float
    refresh_lease_seconds: int
    scan_batch_size: int
    refresh_jitter_seconds: float
    max_refresh_attempts: int
    status_token: str | None
    demo: bool
    worker_concurrency: int
    worker_metrics_port: int
    beat_schedule_file: str
    log_json: bool
    log_level: str

    @property
    def is_development(self) -> bool:
        return self.environment == "development"

    def require_client(self) -> tuple[str, str, str]:
        """Return the SID client id, secret and redirect URI, or say what is missing."""
        missing = [
            name
            for name, value in (
                ("SID_CLIENT_ID", self.client_id),
                ("SID_CLIENT_SECRET", self.client_secret),
                ("SID_REDIRECT_URI", self.redirect_uri),
            )
            if not value
        ]
        if missing:
            raise ConfigurationError(
                f"{', '.join(missing)} not set; set them to your SID application's "
                "credentials, or run the simulator with `make run`",
                variable=missing[0],
            )
        assert self.client_id and self.client_secret and self.redirect_uri
        return self.client_id, self.client_secret, self.redirect_uri

    def __repr__(self) -> str:
        hidden = {"client_secret", "secret_key", "encryption_keys", "status_token"}
        shown = ", ".join(
            f"{name}={'<hidden>' if name in hidden else getattr(self, name)!r}"
            for name in (field.name for field in dataclasses.fields(self))
        )
        return f"Settings({shown})"


def _text(env: Mapping[str, str], name: str, default: str | None = None) -> str | None:
    value = env.get(name, "").strip()
    return value or default


def _number(
    env: Mapping[str, str],
    name: str,
    default: T,
    parse: Callable[[str], T],
    minimum: float = 0,
) -> T:
    raw = _text(env, name)
    if raw is None:
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ConfigurationError(
            f"{name}={raw!r} is not a number; set it to a {parse.__name__} "
            f"such as {default!r}",
            variable=name,
        ) from None
    if value < minimum:  # type: ignore[operator]
        raise ConfigurationError(
            f"{name}={raw!r} is below its minimum {minimum}; set a larger value",
            variable=name,
        )
    return value


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = _text(env, name)
    if raw is None:
        return default
    if raw.lower() in {"1", "true", "yes", "on"}:
        return True
    if raw.lower() in {"0", "false", "no", "off"}:
        return False
    raise ConfigurationError(
        f"{name}={raw!r} is not a yes/no value; use 1 or 0", variable=name
    )


def _url(env: Mapping[str, str], name: str, default: str | None) -> str | None:
    value = _text(env, name, default)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ConfigurationError(
            f"{name}={value!r} is not an absolute http(s) URL; set it to one such as "
            "https://example.com/api/sid/callback",
            variable=name,
        )
    return value


def origin(url: str | None) -> str | None:
    """``scheme://host[:port]`` of an absolute URL, lowercased; None for any other."""
    parts = urlsplit(url or "")
    if not (parts.scheme and parts.netloc):
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def _extra_params(env: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """Parse ``SIDTOKENS_AUTHORIZE_EXTRA_PARAMS``, written as ``a=1&b=2``."""
    from urllib.parse import parse_qsl

    raw = _text(env, "SIDTOKENS_AUTHORIZE_EXTRA_PARAMS")
    if raw is None:
        return ()
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise ConfigurationError(
            f"SIDTOKENS_AUTHORIZE_EXTRA_PARAMS={raw!r} is not a query string; "
            "write it as name=value&other=value",
            variable="SIDTOKENS_AUTHORIZE_EXTRA_PARAMS",
        ) from None
    return tuple(pairs)


def _encryption_keys(env: Mapping[str, str]) -> tuple[str, ...]:
    from cryptography.fernet import Fernet

    raw = _text(env, "SIDTOKENS_ENCRYPTION_KEYS")
    if raw is None:
        return ()
    keys = tuple(key.strip() for key in raw.split(",") if key.strip())
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except ValueError:
            raise ConfigurationError(
                f"SIDTOKENS_ENCRYPTION_KEYS: key {position} is not a Fernet key "
                "(32 url-safe base64-encoded bytes); generate one with "
                '`python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"`',
                variable="SIDTOKENS_ENCRYPTION_KEYS",
            ) from None
    return keys


def load(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from ``env`` (the process environment by default)."""
    env = os.environ if env is None else env
    environment = _text(env, "SIDTOKENS_ENV", "production")
    assert environment is not None
    development = environment == "development"
    redis_url = _text(env, "REDIS_URL", "redis://127.0.0.1:6379/0")
    assert redis_url is not None

    client_id = _text(
        env, "SID_CLIENT_ID", DEVELOPMENT_CLIENT_ID if development else None
    )
    client_secret = _text(
        env, "SID_CLIENT_SECRET", DEVELOPMENT_CLIENT_SECRET if development else None
    )
    redirect_uri = _url(
        env, "SID_REDIRECT_URI", DEVELOPMENT_REDIRECT_URI if development else None
    )

    secret_key = _text(env, "SIDTOKENS_SECRET_KEY")
    if secret_key is None:
        if not development:
            raise ConfigurationError(
                "SIDTOKENS_SECRET_KEY is not set; set it to a long random string "
                '(`python -c "import secrets; print(secrets.token_urlsafe(48))"`), '
                "or set SIDTOKENS_ENV=development for local work",
                variable="SIDTOKENS_SECRET_KEY",
            )
        secret_key = DEVELOPMENT_SECRET_KEY

    encryption_keys = _encryption_keys(env)
    if not encryption_keys and not development:
        raise ConfigurationError(
            "SIDTOKENS_ENCRYPTION_KEYS is not set; set it to one or more "
            "comma-separated Fernet keys (the first encrypts, all decrypt), "
            "generated with "
            '`python -c "from cryptography.fernet import Fernet; '
            'print(Fernet.generate_key().decode())"`',
            variable="SIDTOKENS_ENCRYPTION_KEYS",
        )

    database_url = _text(
        env, "DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/sidtokens"
    )
    assert database_url is not None
    token_url = _url(env, "SID_TOKEN_URL", "https://auth.sid.ai/oauth/token")
    authorize_url = _url(
        env, "SID_AUTHORIZE_URL", "https://me.sid.ai/api/oauth/authorize"
    )
    revoke_url = _url(env, "SID_REVOKE_URL", "https://auth.sid.ai/oauth/revoke")
    query_url = _url(env, "SID_QUERY_URL", "https://api.sid.ai/v1/users/me/query")
    after_connect_url = _text(env, "SIDTOKENS_AFTER_CONNECT_URL", "/")
    scope = _text(env, "SID_SCOPE", "query:data offline_access")
    assert token_url and authorize_url and revoke_url and query_url
    assert after_connect_url and scope

    return Settings(
        environment=environment,
        database_url=_normalise_database_url(database_url),
        redis_url=redis_url,
        celery_broker_url=_text(env, "CELERY_BROKER_URL", redis_url) or redis_url,
        client_id=client_id,
        client_secret=client_secret,
        redirect_uri=redirect_uri,
        authorize_url=authorize_url,
        token_url=token_url,
        revoke_url=revoke_url,
        query_url=query_url,
        scope=scope,
        audience=_text(env, "SID_AUDIENCE"),
        authorize_extra_params=_extra_params(env),
        secret_key=secret_key,
        encryption_keys=encryption_keys,
        public_url=_url(env, "SIDTOKENS_PUBLIC_URL", origin(redirect_uri)),
        after_connect_url=after_connect_url,
        refresh_ahead_seconds=_number(env, "SIDTOKENS_REFRESH_AHEAD_SECONDS", 600, int),
        scan_interval_seconds=_number(
            env, "SIDTOKENS_SCAN_INTERVAL_SECONDS", 15.0, float, minimum=0.1
        ),
        cache_margin_seconds=_number(env, "SIDTOKENS_CACHE_MARGIN_SECONDS", 60, int),
        rewarm_interval_seconds=_number(
            env, "SIDTOKENS_REWARM_INTERVAL_SECONDS", 60.0, float, minimum=0.1
        ),
        connect_url_max_age_seconds=_number(
            env, "SIDTOKENS_CONNECT_URL_MAX_AGE_SECONDS", 900, int, minimum=1
        ),
        oauth_flow_max_age_seconds=_number(
            env, "SIDTOKENS_OAUTH_FLOW_MAX_AGE_SECONDS", 600, int, minimum=1
        ),
        http_timeout_seconds=_number(
            env, "SIDTOKENS_HTTP_TIMEOUT_SECONDS", 10.0, float, minimum=0.1
        ),
        token_rate_limit_per_second=_number(
            env, "SIDTOKENS_TOKEN_RATE_LIMIT", 20.0, float, minimum=0.1
        ),
        refresh_lease_seconds=_number(
            env, "SIDTOKENS_REFRESH_LEASE_SECONDS", 120, int, minimum=5
        ),
        scan_batch_size=_number(env, "SIDTOKENS_SCAN_BATCH_SIZE", 500, int, minimum=1),
        refresh_jitter_seconds=_number(
            env, "SIDTOKENS_REFRESH_JITTER_SECONDS", 30.0, float
        ),
        max_refresh_attempts=_number(
            env, "SIDTOKENS_MAX_REFRESH_ATTEMPTS", 8, int, minimum=1
        ),
        status_token=_text(env, "SIDTOKENS_STATUS_TOKEN"),
        demo=_flag(env, "SIDTOKENS_DEMO", development),
        worker_concurrency=_number(
            env, "SIDTOKENS_WORKER_CONCURRENCY", 16, int, minimum=1
        ),
        worker_metrics_port=_number(env, "SIDTOKENS_WORKER_METRICS_PORT", 0, int),
        beat_schedule_file=_text(env, "SIDTOKENS_BEAT_SCHEDULE_FILE")
        or "celerybeat-schedule",
        log_json=_flag(env, "SIDTOKENS_LOG_JSON", False),
        log_level=(_text(env, "SIDTOKENS_LOG_LEVEL", "INFO") or "INFO").upper(),
    )


def _normalise_database_url(url: str) -> str:
    """Accept ``postgres://`` and ``postgresql://`` URLs; use the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


@functools.cache
def get() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    return load()
