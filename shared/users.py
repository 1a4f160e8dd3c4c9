"""Reading and writing a user's SID connection in the ``users`` table.

Both tiers write connections through these functions, so a connect, a refresh and
a disconnect agree on what each column means. Every write that replaces or clears
tokens increments ``sid_refresh_version``: a worker still holding an older claim
can then no longer write its result over the new state.
"""

from __future__ import annotations

import dataclasses
import random
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.orm import Session

from shared.crypto import TokenCipher
from shared.models import Status, User
from shared.oauth import TokenGrant
from shared.settings import Settings


class UnknownUser(LookupError):
    """No row in ``users`` has this id; the host application creates the rows."""

    def __init__(self, user_id: str) -> None:
        super().__init__(f"no user with id {user_id!r} in the users table")
        self.user_id = user_id


@dataclasses.dataclass(frozen=True)
class Connection:
    """A user's decrypted SID connection; ``repr`` shows no token."""

    user_id: str
    status: str | None
    access_token: str | None = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(repr=False)
    expires_at: datetime | None
    version: int

    @classmethod
    def from_row(cls, user: User, cipher: TokenCipher) -> Connection:
        return cls(
            user_id=str(user.id),
            status=user.sid_status,
            access_token=_decrypt(cipher, user.sid_access_token),
            refresh_token=_decrypt(cipher, user.sid_refresh_token),
            expires_at=user.sid_expires_at,
            version=user.sid_refresh_version,
        )


def _decrypt(cipher: TokenCipher, stored: str | None) -> str | None:
    return None if stored is None else cipher.decrypt(stored)


def refresh_ahead(lifetime: timedelta, settings: Settings) -> timedelta:
    """How long before expiry to refresh: the setting, at most half the lifetime."""
    return min(timedelta(seconds=settings.refresh_ahead_seconds), lifetime / 2)


def next_refresh_at(
    expires_at: datetime,
    lifetime: timedelta,
    settings: Settings,
    rng: random.Random | None = None,
) -> datetime:
    """When to refresh a token, moved earlier by a random share of the window.

    The jitter (at most ``SIDTOKENS_REFRESH_JITTER_SECONDS`` and at most half the
    refresh-ahead window) keeps users who connected together from refreshing
    together forever after.
    """
    ahead = refresh_ahead(lifetime, settings)
    spread = min(settings.refresh_jitter_seconds, ahead.total_seconds() / 2)
    jitter = (rng or random).uniform(0, spread)
    return expires_at - ahead - timedelta(seconds=jitter)


def fetch(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)


def fetch_connection(session: Session, user_id: str, cipher: TokenCipher) -> Connection:
    user = fetch(session, user_id)
    if user is None:
        raise UnknownUser(user_id)
    return Connection.from_row(user, cipher)


def _replace_connection(session: Session, user_id: str, **values: object) -> int:
    """Overwrite a user's connection, drop any claim and bump the fencing version."""
    version: int | None = session.scalar(
        sa.update(User)
        .where(User.id == user_id)
        .values(
            **values,
            sid_lease_until=None,
            sid_refresh_version=User.sid_refresh_version + 1,
            sid_refresh_attempts=0,
        )
        .returning(User.sid_refresh_version)
    )
    if version is None:
        raise UnknownUser(user_id)
    return version


def save_connection(
    session: Session,
    user_id: str,
    grant: TokenGrant,
    *,
    cipher: TokenCipher,
    settings: Settings,
) -> int:
    """Store freshly connected tokens, replacing any earlier ones; returns the version.

    The caller commits. Replacing increments the version, which fences out any
    refresh of the previous tokens still in flight.
    """
    assert grant.refresh_token is not None
    now = datetime.now(UTC)
    return _replace_connection(
        session,
        user_id,
        sid_access_token=cipher.encrypt(grant.access_token),
        sid_refresh_token=cipher.encrypt(grant.refresh_token),
        sid_expires_at=grant.expires_at,
        sid_status=Status.CONNECTED.value,
        sid_connected_at=now,
        sid_refreshed_at=now,
        sid_refresh_at=next_refresh_at(grant.expires_at, grant.lifetime, settings),
        sid_last_error=None,
    )


def clear_connection(
    session: Session, user_id: str, *, status: Status, reason: str | None = None
) -> int:
    """Forget a user's tokens and set ``sid_status``; returns the new version.

    The caller commits.
    """
    return _replace_connection(
        session,
        user_id,
        sid_access_token=None,
        sid_refresh_token=None,
        sid_expires_at=None,
        sid_status=status.value,
        sid_refresh_at=None,
        sid_last_error=reason,
    )
