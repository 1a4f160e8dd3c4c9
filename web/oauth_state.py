"""The server-side record of one connect flow, from ``/connect`` to ``/callback``.

``/connect`` makes a single-use ``state`` and a PKCE verifier and keeps them in
Redis for ``SIDTOKENS_OAUTH_FLOW_MAX_AGE_SECONDS``, with the user the flow is for
and the browser that started it (RFC 6749 §10.12, RFC 9700 §2.1). ``/callback``
takes the record out with one ``GETDEL``, so a state is honoured at most once even
when two callbacks race.

Nothing secret is a key: the record lives under a SHA-256 digest of the state, and
the browser is bound through a digest of a random nonce held in an HttpOnly cookie,
compared in constant time.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
import secrets

import redis

from shared.errors import RequestRejected, StorageError
from shared.oauth import Pkce

FLOW_KEY = "sid:oauth_flow:{digest}"
#: The cookie that ties a flow to the browser that started it.
BROWSER_COOKIE = "sidtokens_flow"
BROWSER_COOKIE_PATH = "/api/sid"
_NONCE_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def flow_key(state: str) -> str:
    """The Redis key of the flow that ``state`` names."""
    return FLOW_KEY.format(digest=_digest(state))


def browser_nonce(cookie: str | None) -> str:
    """The browser's nonce from its cookie, or a new one when it has none."""
    if cookie is not None and _NONCE_SHAPE.fullmatch(cookie):
        return cookie
    return secrets.token_urlsafe(32)


@dataclasses.dataclass(frozen=True)
class Flow:
    """A connect flow in progress; ``repr`` shows only the user."""

    user_id: str
    browser_digest: str = dataclasses.field(repr=False)
    verifier: str = dataclasses.field(repr=False)

    def is_bound_to(self, nonce: str | None) -> bool:
        """Whether the browser presenting ``nonce`` is the one that started the flow."""
        presented = _digest(nonce or "")
        return hmac.compare_digest(presented, self.browser_digest)

    def dumps(self) -> str:
        return json.dumps(
            {
                "user_id": self.user_id,
                "browser": self.browser_digest,
                "verifier": self.verifier,
            }
        )

    @classmethod
    def loads(cls, stored: bytes | str) -> Flow:
        fields = json.loads(stored)
        return cls(
            user_id=fields["user_id"],
            browser_digest=fields["browser"],
            verifier=fields["verifier"],
        )


@dataclasses.dataclass(frozen=True)
class Started:
    """What ``/connect`` sends to SID: the state and the PKCE pair."""

    state: str = dataclasses.field(repr=False)
    pkce: Pkce


class FlowStore:
    """Connect flows in Redis: begun once, consumed once, gone when they expire."""

    def __init__(self, client: redis.Redis, *, max_age_seconds: int) -> None:
        self.client = client
        self.max_age_seconds = max_age_seconds

    def begin(self, user_id: str, nonce: str) -> Started:
        """Record a new flow for ``user_id`` in the browser holding ``nonce``."""
        started = Started(state=secrets.token_urlsafe(32), pkce=Pkce.generate())
        flow = Flow(
            user_id=user_id,
            browser_digest=_digest(nonce),
            verifier=started.pkce.verifier,
        )
        try:
            self.client.set(
                flow_key(started.state), flow.dumps(), ex=self.max_age_seconds
            )
        except redis.RedisError as exc:
            raise _unavailable("record a connect flow", exc) from exc
        return started

    def consume(self, state: str | None, nonce: str | None) -> Flow:
        """Take the flow ``state`` names out of Redis, for the browser with ``nonce``.

        Raises :class:`RequestRejected` when there is no such flow or another
        browser started it; either way the state cannot be used again.
        """
        if not state:
            raise RequestRejected(
                "the callback carries no state, so it belongs to no connect flow; "
                "start again from the application's connect link",
                reason="state_missing",
            )
        try:
            stored = self.client.getdel(flow_key(state))
        except redis.RedisError as exc:
            raise _unavailable("read a connect flow", exc) from exc
        if stored is None:
            raise RequestRejected(
                "the callback's state names no live connect flow (already used, "
                "expired, or never started here); start again from the connect link",
                reason="state_unknown",
            )
        flow = Flow.loads(stored)
        if not flow.is_bound_to(nonce):
            raise RequestRejected(
                "the connect flow was started in another browser (its cookie is "
                "missing or different); start again from the connect link in the "
                "browser that will approve",
                reason="browser_mismatch",
                status=403,
            )
        return flow


def _unavailable(action: str, exc: redis.RedisError) -> StorageError:
    return StorageError(
        f"Redis failed to {action} ({type(exc).__name__}); check that it is running "
        "and that REDIS_URL is right"
    )
