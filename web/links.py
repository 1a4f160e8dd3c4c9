"""Signed, expiring links that start a connect or a disconnect for one user.

A link is ``<SIDTOKENS_PUBLIC_URL>/api/sid/<purpose>?t=<token>``, the token being
the user id signed with ``SIDTOKENS_SECRET_KEY`` by itsdangerous. The signature is
salted with the link's purpose, so a connect link can never be replayed as a
disconnect link, and a link expires ``SIDTOKENS_CONNECT_URL_MAX_AGE_SECONDS`` after
it was made.

A link is a bearer credential while it lives: whoever opens a connect link attaches
the SID account they approve with to that user. Host applications should make one
per click, for the user who is signed in, and never publish one.
"""

from __future__ import annotations

import enum

from itsdangerous import BadData, SignatureExpired, URLSafeTimedSerializer

from shared.errors import ConfigurationError, RequestRejected
from shared.settings import Settings

CONNECT_PATH = "/api/sid/connect"
DISCONNECT_PATH = "/api/sid/disconnect"
#: The query parameter that carries the signed token.
TOKEN_PARAMETER = "t"  # noqa: S105 - a parameter name


class Purpose(enum.StrEnum):
    """What a link starts; part of the signature's salt and of its path."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"

    @property
    def path(self) -> str:
        return CONNECT_PATH if self is Purpose.CONNECT else DISCONNECT_PATH


def _serializer(settings: Settings, purpose: Purpose) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=f"sidtokens.{purpose}-link")


def _public_url(settings: Settings) -> str:
    if settings.public_url is None:
        raise ConfigurationError(
            "SIDTOKENS_PUBLIC_URL is not set (nor SID_REDIRECT_URI, whose origin it "
            "defaults to); set it to the origin browsers use to reach the web tier, "
            "such as https://app.example.com",
            variable="SIDTOKENS_PUBLIC_URL",
        )
    return settings.public_url.rstrip("/")


def sign(user_id: str, purpose: Purpose, settings: Settings) -> str:
    """The signed token for ``user_id`` that a link of ``purpose`` carries."""
    token: str = _serializer(settings, purpose).dumps(str(user_id))
    return token


def link(user_id: str, purpose: Purpose, settings: Settings) -> str:
    """An absolute, signed, expiring URL that starts ``purpose`` for ``user_id``."""
    token = sign(user_id, purpose, settings)
    return f"{_public_url(settings)}{purpose.path}?{TOKEN_PARAMETER}={token}"


def connect_url(user_id: str, settings: Settings) -> str:
    """The URL that sends a user's browser through SID's consent and back."""
    return link(user_id, Purpose.CONNECT, settings)


def disconnect_url(user_id: str, settings: Settings) -> str:
    """The URL of the page that revokes a user's SID connection."""
    return link(user_id, Purpose.DISCONNECT, settings)


def read(token: str | None, purpose: Purpose, settings: Settings) -> str:
    """The user id a link's token was signed for, or :class:`RequestRejected`."""
    if not token:
        raise RequestRejected(
            f"the {purpose} link has no signed token; open the link exactly as the "
            "application gave it",
            reason="link_missing",
            status=400,
        )
    try:
        user_id = _serializer(settings, purpose).loads(
            token, max_age=settings.connect_url_max_age_seconds
        )
    except SignatureExpired:
        raise RequestRejected(
            f"the {purpose} link expired (links live "
            f"{settings.connect_url_max_age_seconds}s); ask the application for a "
            "new one",
            reason="link_expired",
            status=410,
        ) from None
    except BadData:
        raise RequestRejected(
            f"the {purpose} link is not signed by this application or was altered; "
            "ask the application for a new one",
            reason="link_invalid",
            status=403,
        ) from None
    if not isinstance(user_id, str) or not user_id:
        raise RequestRejected(
            f"the {purpose} link names no user; ask the application for a new one",
            reason="link_invalid",
            status=403,
        )
    return user_id
