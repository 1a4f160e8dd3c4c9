"""SID's OAuth provider as plain Python: consent, codes, refresh tokens, revocation.

Nothing here knows about HTTP. The clock is injected, so the lifetimes of §4 of the
provider spec can be reasoned about without waiting. Every refusal is an
:class:`OAuthError` carrying the status and JSON body SID's Auth0 tenant would send
(spec §5); the HTTP layer only serialises it.

The refresh rules (spec §4.2), in the order they are checked:

1. An unknown token, one issued to another client, one in a revoked family or grant,
   or one past the family's absolute lifetime is refused.
2. A rotated token inside the leeway, presented while it is the parent of the
   family's newest token, gets another child: no breach.
3. Any other rotated token is a *reuse*: the whole family, the newest token included,
   is revoked along with the grant, and the request is refused.
4. An active token past its idle lifetime is refused.
5. Otherwise the token is exchanged: rotated (a new child, idle lifetime renewed,
   absolute lifetime unchanged) or, in non-rotating mode, kept and renewed.

Every refresh refusal has the same body, because that is what the real provider does;
the admin view (:meth:`Provider.describe_user`) tells the reasons apart.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator, Mapping

from simulator import authorization
from simulator.grants import (
    AccessToken,
    AuthorizationCode,
    Client,
    ConsentRequest,
    Family,
    Grant,
    RefreshToken,
    TokenState,
)
from simulator.stats import Stats

Clock = Callable[[], float]

CONSENT_TTL_SECONDS = 600
DESCRIBED_TOKENS = 20
# Bounds memory when a browser opens consent pages and never answers them.
MAX_PENDING_CONSENTS = 10_000
REFRESH_REFUSAL = "Unknown or invalid refresh token."
INVALID_CODE = "Invalid authorization code"
INVALID_CODE_OR_VERIFIER = "Invalid authorization code or code verifier"
# RFC 7636 §4.1: 43 to 128 characters from the unreserved set.
CODE_VERIFIER = re.compile(r"[A-Za-z0-9\-._~]{43,128}")
CLIENT_AUTH_METHODS = ("any", "basic", "post")
CLIENT_AUTH_ERRORS = ("access_denied", "invalid_client")
REFRESH_ERRORS = ("invalid_grant", "access_denied")
IGNORE, REVOKE_GRANT = "ignore", "revoke_grant"
ACCESS_TOKEN_REVOCATIONS = (IGNORE, REVOKE_GRANT)
BEARER = "Bearer"


class OAuthError(Exception):
    """A refusal with the status and JSON body the provider answers with.

    ``kind`` names the outcome for the statistics, which is not always the wire
    ``error``: a failed client authentication says ``access_denied`` on the wire.
    """

    def __init__(
        self, status: int, error: str, description: str, *, kind: str | None = None
    ) -> None:
        super().__init__(f"{status} {error}: {description}")
        self.status = status
        self.error = error
        self.description = description
        self.kind = kind or error

    def body(self) -> dict[str, str]:
        return {"error": self.error, "error_description": self.description}


def invalid_request(description: str) -> OAuthError:
    return OAuthError(400, "invalid_request", description)


@dataclasses.dataclass
class ProviderConfig:
    """The tenant settings that tests change at run time through ``/admin/config``.

    Lifetimes are seconds; ``None`` means infinite. ``refresh_token_cap`` is Auth0's
    limit of live refresh tokens per user and client (0 turns it off).
    """

    access_token_ttl: int = 86_400
    rotation: bool = True
    leeway: int = 0
    refresh_absolute_lifetime: int | None = 2_592_000
    refresh_idle_lifetime: int | None = 2_592_000
    code_ttl: int = 600
    refresh_token_cap: int = 200
    reuse_revokes_grant: bool = True
    leeway_keeps_child: bool = True
    revocation_deletes_grant: bool = False
    access_token_revocation: str = IGNORE
    revoked_grant_kills_access_tokens: bool = False
    client_auth_methods: str = "any"
    client_auth_error: str = "access_denied"
    refresh_error: str = "invalid_grant"

    def __post_init__(self) -> None:
        _at_least(1, access_token_ttl=self.access_token_ttl, code_ttl=self.code_ttl)
        _at_least(0, leeway=self.leeway, refresh_token_cap=self.refresh_token_cap)
        _at_least(
            1,
            refresh_absolute_lifetime=self.refresh_absolute_lifetime,
            refresh_idle_lifetime=self.refresh_idle_lifetime,
        )
        _one_of(CLIENT_AUTH_METHODS, client_auth_methods=self.client_auth_methods)
        _one_of(CLIENT_AUTH_ERRORS, client_auth_error=self.client_auth_error)
        _one_of(REFRESH_ERRORS, refresh_error=self.refresh_error)
        _one_of(
            ACCESS_TOKEN_REVOCATIONS,
            access_token_revocation=self.access_token_revocation,
        )


def _at_least(minimum: int, **values: int | None) -> None:
    for name, value in values.items():
        if value is not None and value < minimum:
            raise ValueError(f"{name} must be at least {minimum}, not {value}")


def _one_of(choices: tuple[str, ...], **values: str) -> None:
    for name, value in values.items():
        if value not in choices:
            raise ValueError(
                f"{name} must be one of {', '.join(choices)}, not {value!r}"
            )


@dataclasses.dataclass(frozen=True)
class ClientCredentials:
    """What a request offered to authenticate the client, and how."""

    client_id: str | None
    client_secret: str | None = dataclasses.field(repr=False)
    method: str
    body_client_id: str | None = None


def _expiry(now: float, lifetime: int | None) -> float | None:
    return None if lifetime is None else now + lifetime


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def _id_token(access: AccessToken, client_id: str) -> str:
    """A JWT-shaped, unsigned ID token: enough for a client that only reads claims."""
    header = {"alg": "none", "typ": "JWT"}
    claims = {
        "sub": f"sid|{access.sid_user}",
        "aud": client_id,
        "exp": int(access.expires_at),
    }
    parts = (json.dumps(header), json.dumps(claims))
    encoded = (base64.urlsafe_b64encode(p.encode()).rstrip(b"=") for p in parts)
    return ".".join(part.decode() for part in encoded) + "."


class Provider:
    """The tenant's state and rules for one registered client."""

    def __init__(
        self,
        client: Client,
        config: ProviderConfig,
        *,
        audiences: frozenset[str] = frozenset({authorization.SID_AUDIENCE}),
        stats: Stats | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.client = client
        self.config = config
        self.audiences = audiences
        self.stats = stats or Stats()
        self.clock = clock
        self.reset()

    def reset(self) -> None:
        """Forget every consent, code, grant and token."""
        self._consents: dict[str, ConsentRequest] = {}
        self._codes: dict[str, AuthorizationCode] = {}
        self._grants: dict[str, list[Grant]] = {}
        self._refresh_tokens: dict[str, RefreshToken] = {}
        self._access_tokens: dict[str, AccessToken] = {}
        self._ids = iter(range(1, 2**62))

    # Authorization: the consent page and its decision.

    def begin_consent(self, params: Mapping[str, str]) -> ConsentRequest:
        """Validate an authorize request and hold it until the user decides."""
        now = self.clock()
        client = (
            self.client if params.get("client_id") == self.client.client_id else None
        )
        request = authorization.consent_request(
            params,
            client,
            audiences=self.audiences,
            request_id=secrets.token_urlsafe(16),
            expires_at=now + CONSENT_TTL_SECONDS,
        )
        self._forget_stale_consents(now)
        self._consents[request.id] = request
        return request

    def _forget_stale_consents(self, now: float) -> None:
        # Insertion order is expiry order, so stale requests sit at the front.
        while self._consents:
            oldest = next(iter(self._consents.values()))
            if oldest.expires_at > now and len(self._consents) < MAX_PENDING_CONSENTS:
                return
            del self._consents[oldest.id]

    def decide(self, request_id: str, sid_user: str | None) -> str:
        """Approve (with a SID user) or deny (``None``) and return the redirect."""
        request = self._consents.pop(request_id, None)
        if request is None or request.expires_at <= self.clock():
            raise authorization.UntrustedRedirect(
                "This authorization request is unknown or has expired; "
                "start the connection again from the application."
            )
        if sid_user is None:
            self.stats.outcome("consents", "denied")
            return authorization.redirect_location(
                request.redirect_uri,
                {
                    "error": "access_denied",
                    "error_description": authorization.DENIED_DESCRIPTION,
                },
                request.state,
            )
        code = self._issue_code(request, sid_user)
        self.stats.outcome("consents", "approved")
        return authorization.redirect_location(
            request.redirect_uri, {"code": code.value}, request.state
        )

    def _issue_code(self, request: ConsentRequest, sid_user: str) -> AuthorizationCode:
        code = AuthorizationCode(
            value=secrets.token_urlsafe(24),
            client_id=request.client_id,
            redirect_uri=request.redirect_uri,
            sid_user=sid_user,
            scopes=request.scopes,
            audience=request.audience,
            code_challenge=request.code_challenge,
            expires_at=self.clock() + self.config.code_ttl,
        )
        self._codes[code.value] = code
        self.stats.count("codes_issued")
        return code

    # Client authentication, shared by the token and revoke endpoints.

    def authenticate(self, credentials: ClientCredentials) -> Client:
        """The registered client, or the 401 SID answers a bad secret with."""
        allowed = self.config.client_auth_methods
        if (
            credentials.client_id != self.client.client_id
            or credentials.client_secret is None
            or not hmac.compare_digest(
                credentials.client_secret.encode(), self.client.client_secret.encode()
            )
            or credentials.body_client_id not in (None, credentials.client_id)
            or allowed not in ("any", credentials.method)
        ):
            raise self._unauthorized()
        return self.client

    def _unauthorized(self) -> OAuthError:
        if self.config.client_auth_error == "invalid_client":
            return OAuthError(
                401,
                "invalid_client",
                "Client authentication failed",
                kind="invalid_client",
            )
        return OAuthError(401, "access_denied", "Unauthorized", kind="invalid_client")

    # The authorization_code grant.

    def exchange_code(
        self,
        client: Client,
        value: str,
        redirect_uri: str | None,
        code_verifier: str | None,
    ) -> dict[str, object]:
        """Trade a code for tokens, once; a replay revokes what the code issued."""
        now = self.clock()
        code = self._codes.get(value)
        if code is None or code.client_id != client.client_id:
            raise OAuthError(403, "invalid_grant", INVALID_CODE)
        if code.used_at is not None:
            self._revoke_code_tokens(code, now)
            raise OAuthError(403, "invalid_grant", INVALID_CODE)

        # Any attempt spends the code, so a wrong verifier cannot be retried.
        code.used_at = now
        if now >= code.expires_at or redirect_uri != code.redirect_uri:
            raise OAuthError(403, "invalid_grant", INVALID_CODE)
        if not self._verifier_matches(code, code_verifier):
            raise OAuthError(403, "invalid_grant", INVALID_CODE_OR_VERIFIER)

        grant = self._grant_for(code, now)
        family = None
        if "offline_access" in code.scopes:
            family = self._start_family(grant, code.scopes, self.config.rotation, now)
        code.family = family
        code.access_token = self._issue_access_token(grant, family, code.scopes, now)
        self.stats.count("codes_exchanged")
        return self._token_response(
            code.access_token, family.newest if family else None
        )

    @staticmethod
    def _verifier_matches(code: AuthorizationCode, verifier: str | None) -> bool:
        """PKCE (RFC 7636), refusing a verifier nobody asked for (a downgrade)."""
        if code.code_challenge is None:
            return verifier is None
        if verifier is None or not CODE_VERIFIER.fullmatch(verifier):
            return False
        return hmac.compare_digest(_s256(verifier), code.code_challenge)

    def _revoke_code_tokens(self, code: AuthorizationCode, now: float) -> None:
        # RFC 6749 §4.1.2: a replayed code revokes the tokens it issued.
        self.stats.count("code_reuse")
        if code.family is not None:
            self._revoke_family(code.family, "code_reused", now)
        if code.access_token is not None and code.access_token.revoked_at is None:
            code.access_token.revoked_at = now

    def _grant_for(self, code: AuthorizationCode, now: float) -> Grant:
        grants = self._grants.setdefault(code.sid_user, [])
        for grant in grants:
            if (
                not grant.is_revoked
                and grant.client_id == code.client_id
                and grant.audience == code.audience
            ):
                return grant
        grant = Grant(
            id=next(self._ids),
            sid_user=code.sid_user,
            client_id=code.client_id,
            audience=code.audience,
            created_at=now,
        )
        grants.append(grant)
        return grant

    # The refresh_token grant.

    def refresh(
        self, client: Client, value: str, scope: str | None
    ) -> dict[str, object]:
        """Exchange a refresh token under the rules in the module docstring."""
        now = self.clock()
        token = self._refresh_tokens.get(value)
        # Counting under the stored string keeps one copy of each value in memory.
        self.stats.refresh_token_used(value if token is None else token.value)
        if token is None or token.family.grant.client_id != client.client_id:
            raise self._refresh_refused()
        family = token.family
        if (
            family.is_revoked
            or token.state is TokenState.REVOKED
            or family.is_expired(now)
        ):
            raise self._refresh_refused()
        if token.state is TokenState.ROTATED:
            return self._exchange_rotated(token, scope, now)
        if token.is_idle_expired(now):
            raise self._refresh_refused()

        scopes = self._narrowed(family, scope)
        if family.rotating != self.config.rotation:
            return self._switch_mode(token, scopes, now)
        if family.rotating:
            return self._rotate(token, scopes, now)
        token.idle_expires_at = _expiry(now, self.config.refresh_idle_lifetime)
        access = self._issue_access_token(family.grant, family, scopes, now)
        return self._token_response(access, None)

    def _refresh_refused(self) -> OAuthError:
        error = self.config.refresh_error
        return OAuthError(403, error, REFRESH_REFUSAL, kind="invalid_grant")

    def _narrowed(self, family: Family, scope: str | None) -> tuple[str, ...]:
        """The scopes of a refresh: the family's, or the subset asked for."""
        if scope is None:
            return family.scopes
        asked = tuple(dict.fromkeys(scope.split()))
        if not asked or not set(asked) <= set(family.scopes):
            raise OAuthError(
                400,
                "invalid_scope",
                "The requested scope exceeds the scope granted by the resource owner",
            )
        return asked

    def _exchange_rotated(
        self, token: RefreshToken, scope: str | None, now: float
    ) -> dict[str, object]:
        family = token.family
        if self._within_leeway(token, now):
            scopes = self._narrowed(family, scope)
            self.stats.count("leeway_reuses")
            return self._rotate(token, scopes, now)
        self.stats.count("reuse_detections")
        self._revoke_family(family, "reuse_detected", now)
        if self.config.reuse_revokes_grant:
            self._revoke_grant(family.grant, "reuse_detected", now)
        raise self._refresh_refused()

    def _within_leeway(self, token: RefreshToken, now: float) -> bool:
        """Only the newest token's parent, and only for ``leeway`` seconds."""
        leeway = self.config.leeway
        newest = token.family.newest
        return (
            leeway > 0
            and token.rotated_at is not None
            and now < token.rotated_at + leeway
            and newest is not None
            and newest.parent is token
        )

    def _rotate(
        self, token: RefreshToken, scopes: tuple[str, ...], now: float
    ) -> dict[str, object]:
        if token.state is TokenState.ROTATED and not self.config.leeway_keeps_child:
            self._revoke_children(token)
        if token.state is TokenState.ACTIVE:
            token.state = TokenState.ROTATED
            token.rotated_at = now
        child = self._issue_refresh_token(token.family, token, now)
        access = self._issue_access_token(token.family.grant, token.family, scopes, now)
        return self._token_response(access, child)

    def _revoke_children(self, parent: RefreshToken) -> None:
        for token in parent.family.tokens:
            if token.parent is parent and token.state is TokenState.ACTIVE:
                token.state = TokenState.REVOKED

    def _switch_mode(
        self, token: RefreshToken, scopes: tuple[str, ...], now: float
    ) -> dict[str, object]:
        """Spec §4.1: a mode change replaces the family with one of the new mode."""
        old = token.family
        reason = "rotation_enabled" if self.config.rotation else "rotation_disabled"
        self._revoke_family(old, reason, now)
        family = self._start_family(old.grant, old.scopes, self.config.rotation, now)
        access = self._issue_access_token(family.grant, family, scopes, now)
        return self._token_response(access, family.newest)

    # Issuing and revoking.

    def _start_family(
        self, grant: Grant, scopes: tuple[str, ...], rotating: bool, now: float
    ) -> Family:
        family = Family(
            id=next(self._ids),
            grant=grant,
            scopes=scopes,
            rotating=rotating,
            created_at=now,
            absolute_expires_at=_expiry(now, self.config.refresh_absolute_lifetime),
        )
        grant.families.append(family)
        self._issue_refresh_token(family, None, now)
        self._enforce_token_cap(grant, now)
        return family

    def _enforce_token_cap(self, grant: Grant, now: float) -> None:
        """Auth0 evicts the oldest live refresh tokens beyond 200 per user and app."""
        cap = self.config.refresh_token_cap
        if cap == 0:
            return
        live = [
            family
            for family in self._families_of(grant.sid_user)
            if family.grant.client_id == grant.client_id
            and not family.is_revoked
            and not family.is_expired(now)
        ]
        for family in live[: max(0, len(live) - cap)]:
            self._revoke_family(family, "token_cap", now)
            self.stats.count("families_evicted")

    def _families_of(self, sid_user: str) -> Iterator[Family]:
        for grant in self._grants.get(sid_user, ()):
            yield from grant.families

    def _issue_refresh_token(
        self, family: Family, parent: RefreshToken | None, now: float
    ) -> RefreshToken:
        token = RefreshToken(
            value="sim_rt_" + secrets.token_urlsafe(32),
            family=family,
            parent=parent,
            serial=len(family.tokens),
            issued_at=now,
            idle_expires_at=_expiry(now, self.config.refresh_idle_lifetime),
        )
        family.tokens.append(token)
        family.newest = token
        self._refresh_tokens[token.value] = token
        return token

    def _issue_access_token(
        self, grant: Grant, family: Family | None, scopes: tuple[str, ...], now: float
    ) -> AccessToken:
        token = AccessToken(
            value="sim_at_" + secrets.token_urlsafe(32),
            grant=grant,
            family=family,
            scopes=scopes,
            expires_at=now + self.config.access_token_ttl,
        )
        self._access_tokens[token.value] = token
        return token

    def _token_response(
        self, access: AccessToken, refresh: RefreshToken | None
    ) -> dict[str, object]:
        response: dict[str, object] = {"access_token": access.value}
        if refresh is not None:
            response["refresh_token"] = refresh.value
        if "openid" in access.scopes:
            response["id_token"] = _id_token(access, access.grant.client_id)
        response["scope"] = " ".join(access.scopes)
        response["expires_in"] = self.config.access_token_ttl
        response["token_type"] = BEARER
        return response

    def _revoke_family(self, family: Family, reason: str, now: float) -> None:
        if family.revoked_at is None:
            family.revoked_at = now
            family.revoked_reason = reason
            self.stats.count("families_revoked")

    def _revoke_grant(self, grant: Grant, reason: str, now: float) -> None:
        if grant.is_revoked:
            return
        grant.revoked_at = now
        grant.revoked_reason = reason
        self.stats.count("grants_revoked")
        for family in grant.families:
            self._revoke_family(family, reason, now)

    # Revocation (RFC 7009) and the query API's token check.

    def revoke(self, client: Client, value: str) -> str:
        """Revoke a token if it is this client's; the outcome is for the statistics.

        Unknown tokens and other clients' tokens are ignored, as RFC 7009 asks, so the
        answer never tells a caller whether a token exists.
        """
        now = self.clock()
        refresh = self._refresh_tokens.get(value)
        if refresh is not None and refresh.family.grant.client_id == client.client_id:
            self._revoke_refresh_token(refresh, now)
            return "refresh_token"
        access = self._access_tokens.get(value)
        if access is not None and access.grant.client_id == client.client_id:
            if self.config.access_token_revocation == REVOKE_GRANT:
                self._revoke_grant(access.grant, "access_token_revoked", now)
            return "access_token"
        return "unknown"

    def _revoke_refresh_token(self, token: RefreshToken, now: float) -> None:
        # The family is the credential the client holds; revoking any of its tokens
        # ends it, and the tenant toggle widens that to the whole grant.
        if self.config.revocation_deletes_grant:
            self._revoke_grant(token.family.grant, "revoked", now)
        else:
            self._revoke_family(token.family, "revoked", now)

    def access_token(self, value: str) -> AccessToken | None:
        """The access token if known and unexpired (and, optionally, not withdrawn)."""
        token = self._access_tokens.get(value)
        if token is None or self.clock() >= token.expires_at:
            return None
        if self.config.revoked_grant_kills_access_tokens and token.is_withdrawn():
            return None
        return token

    # What SID's dashboard offers a user, and what tests inspect.

    def revoke_user(self, sid_user: str) -> int:
        """Revoke every grant of a SID user, like removing the app in SID's dashboard.

        Returns how many grants were still live.
        """
        now = self.clock()
        live = [g for g in self._grants.get(sid_user, ()) if not g.is_revoked]
        for grant in live:
            self._revoke_grant(grant, "user_revoked", now)
        self.stats.count("user_revocations")
        return len(live)

    def describe_user(self, sid_user: str) -> dict[str, object]:
        """A SID user's grants, families and token states, with no token values."""
        now = self.clock()
        grants = self._grants.get(sid_user, [])
        codes = [c for c in self._codes.values() if c.sid_user == sid_user]
        return {
            "sid_user": sid_user,
            "now": now,
            "codes": [_describe_code(code, now) for code in codes],
            "grants": [_describe_grant(grant, now) for grant in grants],
        }


def _describe_code(code: AuthorizationCode, now: float) -> dict[str, object]:
    return {
        "scopes": list(code.scopes),
        "expires_at": code.expires_at,
        "expired": now >= code.expires_at,
        "used": code.used_at is not None,
        "pkce": code.code_challenge is not None,
    }


def _describe_grant(grant: Grant, now: float) -> dict[str, object]:
    return {
        "id": grant.id,
        "client_id": grant.client_id,
        "audience": grant.audience,
        "created_at": grant.created_at,
        "revoked": grant.is_revoked,
        "revoked_reason": grant.revoked_reason,
        "families": [_describe_family(family, now) for family in grant.families],
    }


def _describe_family(family: Family, now: float) -> dict[str, object]:
    states = [_token_state(token, now) for token in family.tokens]
    return {
        "id": family.id,
        "scopes": list(family.scopes),
        "rotating": family.rotating,
        "created_at": family.created_at,
        "absolute_expires_at": family.absolute_expires_at,
        "expired": family.is_expired(now),
        "revoked": family.is_revoked,
        "revoked_reason": family.revoked_reason or family.grant.revoked_reason,
        "usable_tokens": states.count(TokenState.ACTIVE.value),
        "token_count": len(family.tokens),
        # A long chain would make the view huge; the recent end is what tests read.
        "tokens": [
            _describe_token(token, state)
            for token, state in zip(
                family.tokens[-DESCRIBED_TOKENS:],
                states[-DESCRIBED_TOKENS:],
                strict=True,
            )
        ],
    }


def _token_state(token: RefreshToken, now: float) -> str:
    """A token's state as a refresh would see it, family revocation and expiry
    folded in, so a test can wait for ``state`` instead of sleeping."""
    if token.family.is_revoked:
        return TokenState.REVOKED.value
    if token.state is TokenState.ACTIVE and (
        token.family.is_expired(now) or token.is_idle_expired(now)
    ):
        return "expired"
    return token.state.value


def _describe_token(token: RefreshToken, state: str) -> dict[str, object]:
    return {
        "serial": token.serial,
        "state": state,
        "issued_at": token.issued_at,
        "idle_expires_at": token.idle_expires_at,
        "rotated_at": token.rotated_at,
    }
