"""Connecting and disconnecting one user: the work behind the routes and the CLI.

Connect: exchange the code, store the tokens (one UPDATE that replaces any earlier
connection and fences out refreshes of it), then publish the access token with a
``connected`` event. The database is the truth: when Redis fails after the commit
the user is still connected and the worker's re-warm publishes the token later.

Disconnect: revoke the refresh token at SID first, while holding the user's row, so
a refresh cannot slip a new token in between; only when SID confirms are the
columns cleared and the published token deleted with a ``disconnected`` event.
When SID cannot confirm, nothing changes and the caller reports it for a retry.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import logging
import time
from collections.abc import Iterator

from sqlalchemy.exc import DataError, SQLAlchemyError
from sqlalchemy.orm import Session

from shared.errors import ProviderError, StorageError
from shared.metrics import CACHE_WRITES
from shared.models import Status, User
from shared.oauth import TokenGrant
from shared.runtime import Runtime
from shared.token_cache import Event
from shared.users import (
    Connection,
    UnknownUser,
    clear_connection,
    fetch,
    save_connection,
)

log = logging.getLogger("sidtokens.web")


class ConnectOutcome(enum.StrEnum):
    """How a callback with a valid state ended; the values are the ``reason``s."""

    CONNECTED = "connected"
    ACCESS_DENIED = "access_denied"
    PROVIDER_REFUSED = "provider_refused"
    PROVIDER_UNAVAILABLE = "provider_unavailable"


@dataclasses.dataclass(frozen=True)
class ConnectResult:
    """What a connect did: its outcome, whether Redis has the token, and why not."""

    outcome: ConnectOutcome
    published: bool = False
    detail: str | None = None


@dataclasses.dataclass(frozen=True)
class Disconnected:
    """A finished disconnect; ``revoked`` says whether SID held a token to revoke."""

    user_id: str
    revoked: bool


@contextlib.contextmanager
def _database(action: str) -> Iterator[None]:
    """Translate any database failure into a :class:`StorageError` naming ``action``."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise StorageError(
            f"PostgreSQL failed to {action} ({type(exc).__name__}); check that it is "
            "running and that DATABASE_URL is right, then try again"
        ) from exc


def user_exists(runtime: Runtime, user_id: str) -> bool:
    """Whether ``users`` has a row with this id (an id of the wrong type has none)."""
    with _database("look up a user"), runtime.sessions() as session:
        try:
            return fetch(session, user_id) is not None
        except DataError:
            # Text such as "abc" cannot name a row of a bigint or uuid id column.
            return False


def outcome_of_refusal(error: ProviderError) -> ConnectOutcome:
    """A failed exchange: worth retrying later, or refused for good."""
    if error.retryable:
        return ConnectOutcome.PROVIDER_UNAVAILABLE
    return ConnectOutcome.PROVIDER_REFUSED


def _revoke_quietly(runtime: Runtime, grant: TokenGrant) -> None:
    """Revoke tokens we failed to store, so no live grant is left unaccounted for."""
    assert grant.refresh_token is not None
    with contextlib.suppress(ProviderError):
        runtime.client.revoke(grant.refresh_token)


def _save(runtime: Runtime, user_id: str, grant: TokenGrant) -> None:
    try:
        with _database("store the new SID tokens"), runtime.sessions() as session:
            save_connection(
                session,
                user_id,
                grant,
                cipher=runtime.cipher,
                settings=runtime.settings,
            )
            session.commit()
    except (StorageError, UnknownUser):
        _revoke_quietly(runtime, grant)
        raise


def _publish(runtime: Runtime, user_id: str, grant: TokenGrant) -> bool:
    # A new connection replaces the previous one's token even when that one would
    # have lived longer.
    written = runtime.cache.publish(
        user_id,
        grant.access_token,
        grant.expires_at,
        event=Event.CONNECTED,
        replace=True,
    )
    if written:
        CACHE_WRITES.labels(source="connect").inc()
    return written


def connect(runtime: Runtime, user_id: str, code: str, verifier: str) -> ConnectResult:
    """Exchange ``code`` for tokens, store them for ``user_id`` and publish them.

    A refused or failed exchange is an outcome, not an error. A failed database
    write raises :class:`StorageError` and publishes nothing; a failed publish after
    the commit is reported in the result.
    """
    try:
        grant = runtime.client.exchange_code(code, code_verifier=verifier)
    except ProviderError as exc:
        return ConnectResult(outcome_of_refusal(exc), detail=str(exc))

    _save(runtime, user_id, grant)
    try:
        published = _publish(runtime, user_id, grant)
    except StorageError as exc:
        return ConnectResult(ConnectOutcome.CONNECTED, detail=str(exc))

    return ConnectResult(ConnectOutcome.CONNECTED, published=published)


def _locked_connection(session: Session, runtime: Runtime, user_id: str) -> Connection:
    try:
        user = session.get(User, user_id, with_for_update=True)
    except DataError:
        user = None
    if user is None:
        raise UnknownUser(user_id)
    return Connection.from_row(user, runtime.cipher)


def _forget_published(runtime: Runtime, user_id: str) -> None:
    try:
        runtime.cache.delete(user_id, event=Event.DISCONNECTED)
    except StorageError as exc:
        raise StorageError(
            f"user {user_id} is disconnected in the database, but Redis failed to "
            "delete the published access token; disconnect again once Redis answers"
        ) from exc


def _disconnect(runtime: Runtime, user_id: str) -> Disconnected:
    with _database("disconnect a user"), runtime.sessions() as session:
        connection = _locked_connection(session, runtime, user_id)
        if connection.refresh_token is not None:
            runtime.client.revoke(connection.refresh_token)
        clear_connection(session, user_id, status=Status.DISCONNECTED)
        session.commit()

    _forget_published(runtime, user_id)
    return Disconnected(user_id=user_id, revoked=connection.refresh_token is not None)


def _log_disconnect(
    user_id: str, outcome: str, started: float, error: Exception | None
) -> None:
    level = logging.INFO if error is None else logging.WARNING
    fields: dict[str, object] = {
        "user_id": user_id,
        "outcome": outcome,
        "duration_ms": round((time.monotonic() - started) * 1000),
    }
    if error is not None:
        fields["error"] = str(error)
    log.log(level, "disconnect %s", outcome, extra=fields)


def disconnect(runtime: Runtime, user_id: str) -> Disconnected:
    """Revoke ``user_id``'s refresh token at SID, then clear the columns and the key.

    Raises :class:`~shared.errors.ProviderError` when SID does not confirm the
    revocation (nothing is changed then), :class:`UnknownUser` for an unknown id,
    and :class:`StorageError` when PostgreSQL or Redis fails; running it again is
    always safe. A user without tokens is simply marked disconnected.
    """
    started = time.monotonic()
    try:
        result = _disconnect(runtime, user_id)
    except UnknownUser as exc:
        _log_disconnect(user_id, "unknown_user", started, exc)
        raise
    except ProviderError as exc:
        _log_disconnect(user_id, "revoke_failed", started, exc)
        raise
    except StorageError as exc:
        _log_disconnect(user_id, "storage_failed", started, exc)
        raise

    _log_disconnect(user_id, "disconnected", started, None)
    return result
