"""Checking an authorize request the way SID's front door does (spec §7).

Two kinds of refusal exist and they must never be confused. While the client or the
redirect URI is in doubt, the provider may not send the browser anywhere, so it shows
an error page (:class:`UntrustedRedirect`). Once both are known to be registered, every
other problem travels back to the application as ``?error=…&state=…`` on the redirect
URI (:class:`AuthorizeRefusal`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from simulator.grants import Client, ConsentRequest

KNOWN_SCOPES = frozenset({"query:data", "offline_access", "openid", "profile", "email"})
REQUIRED_SCOPE = "query:data"
SID_AUDIENCE = "https://api.sid.ai/api/v1/"
CALLBACK_MISMATCH = (
    "Callback URL mismatch. The provided redirect_uri is not in the list of allowed "
    "callback URLs."
)
UNKNOWN_CLIENT = "Unknown client: the client_id is not registered with this provider."
DENIED_DESCRIPTION = "User did not authorize the request"
# RFC 7636 §4.2: a base64url SHA-256 digest without padding is exactly 43 characters.
S256_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


class UntrustedRedirect(Exception):
    """The client or redirect URI is unknown: show a page, never redirect."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthorizeRefusal(Exception):
    """A problem reported to the application through its redirect URI."""

    def __init__(
        self, redirect_uri: str, state: str | None, error: str, description: str
    ) -> None:
        super().__init__(f"{error}: {description}")
        self.location = redirect_location(
            redirect_uri, {"error": error, "error_description": description}, state
        )


def redirect_location(
    redirect_uri: str, params: Mapping[str, str], state: str | None
) -> str:
    """``redirect_uri`` with ``params`` and the exact ``state`` added to its query."""
    values = dict(params)
    if state is not None:
        values["state"] = state
    parts = urlsplit(redirect_uri)
    added = urlencode(values, quote_via=quote)
    query = f"{parts.query}&{added}" if parts.query else added
    return urlunsplit(parts._replace(query=query))


def _trusted_redirect(params: Mapping[str, str], client: Client) -> str:
    """The redirect URI, once it is known to be registered for the client."""
    redirect_uri = params.get("redirect_uri", "")
    if redirect_uri not in client.redirect_uris:
        raise UntrustedRedirect(CALLBACK_MISMATCH)
    return redirect_uri


class _Problem(Exception):
    """An error code and description, before the redirect that carries them is known."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


def _response_type(params: Mapping[str, str]) -> None:
    response_type = params.get("response_type", "")
    if response_type != "code":
        raise _Problem(
            "unsupported_response_type",
            f"Unsupported response_type {response_type!r}; use response_type=code",
        )


def _scopes(params: Mapping[str, str]) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(params.get("scope", "").split()))
    unknown = sorted(set(scopes) - KNOWN_SCOPES)
    if unknown:
        raise _Problem("invalid_scope", f"Unknown scope(s): {' '.join(unknown)}")
    if REQUIRED_SCOPE not in scopes:
        raise _Problem("invalid_scope", f"The scope must include {REQUIRED_SCOPE}")
    return scopes


def _code_challenge(params: Mapping[str, str]) -> str | None:
    challenge = params.get("code_challenge") or None
    method = params.get("code_challenge_method") or None
    if challenge is None and method is None:
        return None
    if challenge is None:
        raise _Problem(
            "invalid_request", "code_challenge_method without code_challenge"
        )
    if method != "S256":
        raise _Problem(
            "invalid_request", "Only the S256 code_challenge_method is supported"
        )
    if not S256_CHALLENGE.fullmatch(challenge):
        raise _Problem(
            "invalid_request", "code_challenge must be a base64url S256 digest"
        )
    return challenge


def _audience(params: Mapping[str, str], audiences: frozenset[str]) -> str | None:
    audience = params.get("audience") or None
    if audience is not None and audience not in audiences:
        raise _Problem("access_denied", f"Service not found: {audience}")
    return audience


def _prompt(params: Mapping[str, str]) -> None:
    # The simulator holds no login session, so a silent request can never succeed.
    if params.get("prompt") == "none":
        raise _Problem("login_required", "Login required")


def consent_request(
    params: Mapping[str, str],
    client: Client | None,
    *,
    audiences: frozenset[str],
    request_id: str,
    expires_at: float,
) -> ConsentRequest:
    """Validate an authorize request into one that may be shown to the user."""
    if client is None:
        raise UntrustedRedirect(UNKNOWN_CLIENT)
    redirect_uri = _trusted_redirect(params, client)
    state = params.get("state")
    try:
        _response_type(params)
        challenge = _code_challenge(params)
        scopes = _scopes(params)
        audience = _audience(params, audiences)
        _prompt(params)
    except _Problem as problem:
        raise AuthorizeRefusal(
            redirect_uri, state, problem.error, problem.description
        ) from None

    return ConsentRequest(
        id=request_id,
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        scopes=scopes,
        state=state,
        audience=audience,
        code_challenge=challenge,
        expires_at=expires_at,
    )
