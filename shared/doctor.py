"""``sidtokens doctor``: check each dependency and say in plain words what to fix.

Checks run in order and each one stands alone, so a broken database does not hide
a wrong client secret. The token endpoint is probed with a refresh token that
cannot exist: a healthy provider refuses it with ``invalid_grant`` after checking
our client credentials, which tells us both that SID answers and that the secret is
right, without spending any real user's token.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit, urlunsplit

import redis
import sqlalchemy as sa

from shared import settings as settings_module
from shared.crypto import TokenCipher, is_encrypted
from shared.database import VERSION_TABLE
from shared.errors import (
    ClientMisconfigured,
    ConfigurationError,
    GrantRefused,
    ProviderError,
    RateLimited,
)
from shared.models import User
from shared.oauth import SidClient
from shared.settings import Settings


@dataclasses.dataclass(frozen=True)
class Finding:
    check: str
    ok: bool
    detail: str


def _check_database(settings: Settings) -> Finding:
    engine = sa.create_engine(
        settings.database_url,
        poolclass=sa.NullPool,
        connect_args={"connect_timeout": 3},
    )
    where = sa.make_url(settings.database_url).render_as_string(hide_password=True)
    try:
        with engine.connect() as connection:
            inspector = sa.inspect(connection)
            if not inspector.has_table(VERSION_TABLE):
                return Finding(
                    "database",
                    False,
                    f"PostgreSQL at {where} answers, but the schema is not installed; "
                    "run `sidtokens migrate`",
                )
    except sa.exc.OperationalError as exc:
        return Finding(
            "database",
            False,
            f"PostgreSQL at {where} does not answer ({_first_line(exc.orig)}); start "
            "it, or fix DATABASE_URL",
        )
    finally:
        engine.dispose()
    return Finding("database", True, f"PostgreSQL at {where} answers; schema installed")


def _check_encryption(settings: Settings) -> Finding:
    engine = sa.create_engine(
        settings.database_url,
        poolclass=sa.NullPool,
        connect_args={"connect_timeout": 3},
    )
    cipher = TokenCipher(settings.encryption_keys)
    try:
        with engine.connect() as connection:
            sample = connection.scalar(
                sa.select(User.sid_refresh_token)
                .where(User.sid_refresh_token.is_not(None))
                .limit(1)
            )
    except sa.exc.SQLAlchemyError:
        sample = None
    finally:
        engine.dispose()
    if not settings.encryption_keys:
        if sample is not None and is_encrypted(sample):
            return Finding(
                "encryption",
                False,
                "stored tokens are encrypted but SIDTOKENS_ENCRYPTION_KEYS is not set; "
                "set it to the keys that encrypted them",
            )
        return Finding(
            "encryption",
            settings.is_development,
            "SIDTOKENS_ENCRYPTION_KEYS is not set: tokens are stored as plaintext"
            + ("" if settings.is_development else "; set it outside development"),
        )
    if sample is not None:
        try:
            cipher.decrypt(sample)
        except ConfigurationError as exc:
            return Finding("encryption", False, str(exc))
    return Finding(
        "encryption",
        True,
        f"{len(settings.encryption_keys)} key(s); stored tokens decrypt",
    )


def _check_redis(settings: Settings) -> Finding:
    client = redis.Redis.from_url(
        settings.redis_url, socket_connect_timeout=3, socket_timeout=3
    )
    try:
        client.ping()
    except redis.RedisError as exc:
        return Finding(
            "redis",
            False,
            f"Redis at {_hide_password(settings.redis_url)} does not answer "
            f"({_first_line(exc)}); start it, or fix REDIS_URL",
        )
    finally:
        client.close()
    return Finding(
        "redis", True, f"Redis at {_hide_password(settings.redis_url)} answers"
    )


def _check_broker(settings: Settings) -> Finding:
    from kombu import Connection

    url = settings.celery_broker_url
    shown = _hide_password(url)
    try:
        with Connection(url, connect_timeout=3) as connection:
            connection.ensure_connection(max_retries=1, timeout=3)
    except Exception as exc:  # kombu raises transport-specific errors
        return Finding(
            "broker",
            False,
            f"Celery's broker at {shown} does not answer ({_first_line(exc)}); start "
            "it, or fix CELERY_BROKER_URL",
        )
    return Finding("broker", True, f"Celery's broker at {shown} answers")


def _check_token_endpoint(settings: Settings) -> Finding:
    try:
        settings.require_client()
    except ConfigurationError as exc:
        return Finding("token endpoint", False, str(exc))
    client = SidClient(settings)
    try:
        client.refresh("sidtokens-doctor-probe-" + secrets.token_hex(8))
    except GrantRefused:
        return Finding(
            "token endpoint",
            True,
            f"{settings.token_url} answers and accepts our client credentials",
        )
    except ClientMisconfigured as exc:
        return Finding(
            "token endpoint",
            False,
            f"{settings.token_url} rejects our client (status {exc.status}); check "
            "SID_CLIENT_ID and SID_CLIENT_SECRET against SID's credentials page",
        )
    except RateLimited:
        return Finding(
            "token endpoint",
            True,
            f"{settings.token_url} answers but is rate-limiting us right now",
        )
    except ProviderError as exc:
        return Finding(
            "token endpoint",
            False,
            f"{settings.token_url} is unreachable or failing: {exc}; check "
            "SID_TOKEN_URL and the network",
        )
    return Finding(
        "token endpoint",
        False,
        f"{settings.token_url} accepted a made-up refresh token; check that "
        "SID_TOKEN_URL points at SID",
    )


CHECKS: tuple[Callable[[Settings], Finding], ...] = (
    _check_database,
    _check_encryption,
    _check_redis,
    _check_broker,
    _check_token_endpoint,
)


def _hide_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def _first_line(exc: object) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


def diagnose(env: Mapping[str, str] | None = None) -> list[Finding]:
    """Run every check; a configuration error is itself the only finding."""
    try:
        settings = settings_module.load(env)
    except ConfigurationError as exc:
        return [Finding("configuration", False, str(exc))]
    findings = [Finding("configuration", True, "every setting parses")]
    findings.extend(check(settings) for check in CHECKS)
    return findings


def render(findings: list[Finding]) -> str:
    width = max(len(finding.check) for finding in findings)
    return "\n".join(
        f"{'ok  ' if f.ok else 'FAIL'}  {f.check:<{width}}  {f.detail}"
        for f in findings
    )
