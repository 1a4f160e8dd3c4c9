"""The client for SID's OAuth provider: authorize URL, code exchange, refresh, revoke.

One pooled ``requests`` session per process, a timeout on every call, form-encoded
bodies with the client credentials in the body (as SID's samples send them), and
every answer that is not a token response translated once into our exception tree
(:mod:`shared.errors`):

============================================  ==========================
provider answer                               exception
============================================  ==========================
``invalid_grant`` (any status), legacy 403    :class:`GrantRefused`
``access_denied`` about a refresh token
401, ``invalid_client``,                      :class:`ClientMisconfigured`
``unauthorized_client``, other 4xx
429, or a 5xx carrying an empty rate limit    :class:`RateLimited`
network error, timeout, other 5xx             :class:`ProviderUnavailable`
a 2xx we cannot read as tokens                :class:`MalformedResponse`
============================================  ==========================
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import secrets
import threading
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlencode

import requests
from requests.adapters import HTTPAdapter

from shared.errors import (
    ClientMisconfigured,
    GrantRefused,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from shared.settings import Settings

#: When a 429 names no reset time, wait this long before the next request.
DEFAULT_RATE_LIMIT_PAUSE = timedelta(seconds=1)


@dataclasses.dataclass(frozen=True)
class TokenGrant:
    """What the token endpoint gave us; ``repr`` shows no token."""

    access_token: str = dataclasses.field(repr=False)
    refresh_token: str | None = dataclasses.field(repr=False)
    expires_at: datetime
    lifetime: timedelta
    scope: str | None = None


@dataclasses.dataclass(frozen=True)
class Pkce:
    """A PKCE verifier and its S256 challenge (RFC 7636); ``repr`` shows neither."""

    verifier: str = dataclasses.field(repr=False)

    @classmethod
    def generate(cls) -> Pkce:
        # 48 random bytes give a 64-character verifier: 384 bits, above the RFC's 256.
        return cls(secrets.token_urlsafe(48))

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


class SidClient:
    """Talks to SID's provider for one configured client application."""

    def __init__(
        self, settings: Settings, session: requests.Session | None = None
    ) -> None:
        self.settings = settings
        self._session = session

    @property
    def session(self) -> requests.Session:
        """The given session, else this thread's own pooled one.

        A ``requests.Session`` is not safe to share between threads, and one
        client serves every thread of a worker or web process.
        """
        return self._session or _pooled_session()

    def authorize_url(self, *, state: str, code_challenge: str) -> str:
        """SID's authorize URL for one flow, built anew each time as SID advises."""
        client_id, _, redirect_uri = self.settings.require_client()
        params: dict[str, str] = {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.scope,
            "state": state,
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
        }
        if self.settings.audience:
            params["audience"] = self.settings.audience
        params.update(self.settings.authorize_extra_params)
        return f"{self.settings.authorize_url}?{urlencode(params)}"

    def exchange_code(self, code: str, *, code_verifier: str) -> TokenGrant:
        """Exchange an authorization code for tokens."""
        _, _, redirect_uri = self.settings.require_client()
        answer = self._post_token(
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": code_verifier,
            }
        )
        grant = _read_grant(answer, previous_refresh_token=None)
        if grant.refresh_token is None:
            raise MalformedResponse(
                "SID's code exchange returned no refresh_token; check that the scope "
                "includes offline_access and the API allows offline access",
                status=answer.status_code,
            )
        return grant

    def refresh(self, refresh_token: str) -> TokenGrant:
        """Trade a refresh token for a new access token, maybe with a rotated one.

        A provider that does not rotate omits ``refresh_token``; the grant then
        carries the one we sent, which stays valid.
        """
        answer = self._post_token(
            {"grant_type": "refresh_token", "refresh_token": refresh_token}
        )
        return _read_grant(answer, previous_refresh_token=refresh_token)

    def revoke(self, token: str) -> None:
        """Revoke a refresh token (RFC 7009): 200 means done, whatever the body."""
        answer = self._post(self.settings.revoke_url, {"token": token})
        if answer.status_code != 200:
            raise _error_for(answer, what="revoke")

    def _post_token(self, fields: dict[str, str]) -> requests.Response:
        answer = self._post(self.settings.token_url, fields)
        if answer.status_code != 200:
            raise _error_for(answer, what="token")
        return answer

    def _post(self, url: str, fields: dict[str, str]) -> requests.Response:
        client_id, client_secret, _ = self.settings.require_client()
        body = {"client_id": client_id, "client_secret": client_secret, **fields}
        try:
            return self.session.post(
                url,
                data=body,
                headers={"Accept": "application/json"},
                timeout=self.settings.http_timeout_seconds,
                allow_redirects=False,
            )
        except requests.Timeout as exc:
            raise ProviderUnavailable(
                f"SID did not answer {url} within "
                f"{self.settings.http_timeout_seconds:g}s"
            ) from exc
        except requests.RequestException as exc:
            raise ProviderUnavailable(
                f"could not reach SID at {url} ({type(exc).__name__}); check the URL "
                "and the network"
            ) from exc


_sessions = threading.local()


def _pooled_session() -> requests.Session:
    """One keep-alive session per thread: requests sessions are not thread-safe."""
    session: requests.Session | None = getattr(_sessions, "session", None)
    if session is None:
        session = requests.Session()
        session.mount("https://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        session.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=16))
        _sessions.session = session
    return session


def _json_object(answer: requests.Response) -> dict[str, Any] | None:
    try:
        body = answer.json()
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


def _read_grant(
    answer: requests.Response, *, previous_refresh_token: str | None
) -> TokenGrant:
    body = _json_object(answer)
    if body is None:
        raise MalformedResponse(
            "SID's token endpoint answered 200 with a body that is not a JSON object",
            status=answer.status_code,
        )
    access_token = body.get("access_token")
    expires_in = body.get("expires_in")
    refresh_token = body.get("refresh_token", previous_refresh_token)
    if not isinstance(access_token, str) or not access_token:
        raise MalformedResponse(
            "SID's token response has no access_token", status=answer.status_code
        )
    if isinstance(expires_in, str) and expires_in.isdigit():
        expires_in = int(expires_in)
    if (
        not isinstance(expires_in, int)
        or isinstance(expires_in, bool)
        or expires_in <= 0
    ):
        raise MalformedResponse(
            "SID's token response has no positive integer expires_in",
            status=answer.status_code,
        )
    if refresh_token is not None and (
        not isinstance(refresh_token, str) or not refresh_token
    ):
        raise MalformedResponse(
            "SID's token response has a refresh_token that is not a string",
            status=answer.status_code,
        )
    scope = body.get("scope")
    lifetime = timedelta(seconds=expires_in)
    return TokenGrant(
        access_token=access_token,
        refresh_token=refresh_token,
        expires_at=datetime.now(UTC) + lifetime,
        lifetime=lifetime,
        scope=scope if isinstance(scope, str) else None,
    )


def _error_for(answer: requests.Response, *, what: str) -> ProviderError:
    """Translate a non-200 answer of the token or revoke endpoint."""
    status = answer.status_code
    body = _json_object(answer) or {}
    error = body.get("error") if isinstance(body.get("error"), str) else None
    description = body.get("error_description")
    detail = f"{status} {error or 'without an OAuth error'}"
    if isinstance(description, str):
        detail += f": {description[:200]}"

    if status == 429 or (status >= 500 and _rate_limit_exhausted(answer)):
        reset_at = _reset_time(answer)
        return RateLimited(
            f"SID rate-limited the {what} request ({detail}); paused until "
            f"{reset_at.isoformat()}",
            reset_at=reset_at,
            status=status,
            error=error,
        )
    if status >= 500:
        return ProviderUnavailable(
            f"SID's {what} endpoint failed ({detail})", status=status, error=error
        )
    if error == "invalid_grant" or _is_legacy_refusal(error, description):
        return GrantRefused(
            f"SID refused the grant ({detail}); the user must connect again",
            status=status,
            error=error,
        )
    return ClientMisconfigured(
        f"SID rejected our {what} request ({detail}); check SID_CLIENT_ID, "
        "SID_CLIENT_SECRET, SID_REDIRECT_URI and the grant types allowed for the "
        "application",
        status=status,
        error=error,
    )


def _is_legacy_refusal(error: str | None, description: object) -> bool:
    """Auth0's legacy body for a refused refresh token: 403 ``access_denied``."""
    return (
        error == "access_denied"
        and isinstance(description, str)
        and "refresh token" in description.lower()
    )


def _rate_limit_exhausted(answer: requests.Response) -> bool:
    return answer.headers.get("x-ratelimit-remaining", "").strip() == "0"


def _reset_time(answer: requests.Response) -> datetime:
    """When to try again: ``Retry-After``, else ``x-ratelimit-reset``, else a second."""
    now = datetime.now(UTC)
    retry_after = answer.headers.get("retry-after", "").strip()
    if retry_after.isdigit():
        return now + timedelta(seconds=int(retry_after))
    if retry_after:
        try:
            return parsedate_to_datetime(retry_after).astimezone(UTC)
        except (TypeError, ValueError):
            pass
    reset = answer.headers.get("x-ratelimit-reset", "").strip()
    if reset.isdigit():
        return max(now, datetime.fromtimestamp(int(reset), UTC))
    return now + DEFAULT_RATE_LIMIT_PAUSE
