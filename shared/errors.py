"""The exceptions sid-tokens raises, one tree for the whole project.

::

    SidTokensError
    ├── ConfigurationError          a setting is missing or malformed
    ├── StorageError                PostgreSQL or Redis did not answer
    ├── RequestRejected             a browser request that belongs to no live flow
    └── ProviderError               SID's token endpoint did not give us tokens
        ├── GrantRefused            invalid_grant: the user must connect again
        ├── ClientMisconfigured     our client id, secret or grant type is wrong
        ├── RateLimited             429: wait until ``reset_at``
        ├── ProviderUnavailable     network error, timeout or 5xx: try again later
        └── MalformedResponse       an answer we cannot read as a token response

Foreign exceptions (requests, psycopg, redis) are translated once, where they cross
into our code, with ``raise ... from exc``. Messages never contain a token, a code
or a secret.
"""

from __future__ import annotations

from datetime import datetime


class SidTokensError(Exception):
    """Base class of every error sid-tokens raises on purpose."""


class ConfigurationError(SidTokensError):
    """A setting is missing or malformed; ``variable`` names it."""

    def __init__(self, message: str, *, variable: str | None = None) -> None:
        super().__init__(message)
        self.variable = variable


class StorageError(SidTokensError):
    """PostgreSQL or Redis could not be reached or refused an operation."""


class RequestRejected(SidTokensError):
    """A browser request that belongs to no live flow; nothing was changed.

    ``reason`` names what was wrong for logs and pages (``link_missing``,
    ``link_invalid``, ``link_expired``, ``state_missing``, ``state_unknown``,
    ``browser_mismatch``); ``status`` is the HTTP status the web tier answers with.
    """

    def __init__(self, message: str, *, reason: str, status: int = 400) -> None:
        super().__init__(message)
        self.reason = reason
        self.status = status


class ProviderError(SidTokensError):
    """SID's provider did not give us what we asked for.

    ``status`` is the HTTP status when there was an answer, ``error`` the OAuth
    error code from its body when it had one.
    """

    #: Whether trying the same request again later can succeed.
    retryable: bool = False

    def __init__(
        self, message: str, *, status: int | None = None, error: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error = error


class GrantRefused(ProviderError):
    """The provider refused the grant (``invalid_grant``); the user must reconnect."""


class ClientMisconfigured(ProviderError):
    """Our client credentials or allowed grant types are wrong: an operator error."""


class RateLimited(ProviderError):
    """The provider's rate limit is exhausted until ``reset_at`` (UTC)."""

    retryable = True

    def __init__(
        self,
        message: str,
        *,
        reset_at: datetime,
        status: int | None = 429,
        error: str | None = None,
    ) -> None:
        super().__init__(message, status=status, error=error)
        self.reset_at = reset_at


class ProviderUnavailable(ProviderError):
    """The provider could not be reached, timed out or answered with a 5xx."""

    retryable = True


class MalformedResponse(ProviderError):
    """The provider answered, but not with a token response we can read."""

    retryable = True
