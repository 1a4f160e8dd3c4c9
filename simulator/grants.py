"""What the simulated provider remembers: clients, codes, grants, families, tokens.

The shapes follow the state machine of the provider spec (§4.2). A *grant* is one SID
user's consent for one client and audience. Each successful code exchange with
``offline_access`` starts a *family*: the chain of refresh tokens descending from the
first one. Tokens point to their family and the family to its grant, so revoking either
is one assignment and every later check sees it.

Token values are secrets even in a simulator, so they are kept out of every ``repr``.
"""

from __future__ import annotations

import dataclasses
import enum


class TokenState(enum.StrEnum):
    """Where a refresh token is in its life."""

    ACTIVE = "active"
    ROTATED = "rotated"
    REVOKED = "revoked"


@dataclasses.dataclass(frozen=True)
class Client:
    """The one registered application: its credentials and allowed callbacks."""

    client_id: str
    client_secret: str = dataclasses.field(repr=False)
    redirect_uris: tuple[str, ...]


@dataclasses.dataclass(eq=False, slots=True)
class Grant:
    """A SID user's consent for a client and audience; revoking it ends every family."""

    id: int
    sid_user: str
    client_id: str
    audience: str | None
    created_at: float
    revoked_at: float | None = None
    revoked_reason: str | None = None
    families: list[Family] = dataclasses.field(default_factory=list, repr=False)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None


@dataclasses.dataclass(eq=False, slots=True)
class Family:
    """All refresh tokens descending from the one a code exchange issued."""

    id: int
    grant: Grant = dataclasses.field(repr=False)
    scopes: tuple[str, ...]
    rotating: bool
    created_at: float
    absolute_expires_at: float | None
    revoked_at: float | None = None
    revoked_reason: str | None = None
    tokens: list[RefreshToken] = dataclasses.field(default_factory=list, repr=False)
    newest: RefreshToken | None = dataclasses.field(default=None, repr=False)

    @property
    def is_revoked(self) -> bool:
        return self.revoked_at is not None or self.grant.is_revoked

    def is_expired(self, now: float) -> bool:
        return self.absolute_expires_at is not None and now >= self.absolute_expires_at


@dataclasses.dataclass(eq=False, slots=True)
class RefreshToken:
    """One refresh token value and its place in the family chain."""

    value: str = dataclasses.field(repr=False)
    family: Family = dataclasses.field(repr=False)
    parent: RefreshToken | None = dataclasses.field(repr=False)
    serial: int
    issued_at: float
    idle_expires_at: float | None
    state: TokenState = TokenState.ACTIVE
    rotated_at: float | None = None

    def is_idle_expired(self, now: float) -> bool:
        return self.idle_expires_at is not None and now >= self.idle_expires_at


@dataclasses.dataclass(eq=False, slots=True)
class AccessToken:
    """An opaque access token; like Auth0's JWTs it lives until it expires."""

    value: str = dataclasses.field(repr=False)
    grant: Grant = dataclasses.field(repr=False)
    family: Family | None = dataclasses.field(repr=False)
    scopes: tuple[str, ...]
    expires_at: float
    revoked_at: float | None = None

    @property
    def sid_user(self) -> str:
        return self.grant.sid_user

    def is_withdrawn(self) -> bool:
        """Whether its code was replayed or its grant or family was revoked."""
        family_revoked = self.family is not None and self.family.is_revoked
        return self.revoked_at is not None or self.grant.is_revoked or family_revoked


@dataclasses.dataclass(eq=False, slots=True)
class AuthorizationCode:
    """A single-use code and everything the exchange must match."""

    value: str = dataclasses.field(repr=False)
    client_id: str
    redirect_uri: str
    sid_user: str
    scopes: tuple[str, ...]
    audience: str | None
    code_challenge: str | None = dataclasses.field(repr=False)
    expires_at: float
    used_at: float | None = None
    family: Family | None = dataclasses.field(default=None, repr=False)
    access_token: AccessToken | None = dataclasses.field(default=None, repr=False)


@dataclasses.dataclass(frozen=True)
class ConsentRequest:
    """A validated authorize request waiting for the user's Approve or Deny."""

    id: str
    client_id: str
    redirect_uri: str
    scopes: tuple[str, ...]
    state: str | None = dataclasses.field(repr=False)
    audience: str | None
    code_challenge: str | None = dataclasses.field(repr=False)
    expires_at: float
