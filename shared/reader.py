"""How an application uses the warm tokens: a reader small enough to copy.

1. Read ``sid:access_token:<user_id>`` from Redis: one ``GET``, the usual path.
2. When the key is missing (a lost cache, a token still being refreshed), ask for
   an on-demand refresh, which never calls SID twice for one user at a time.
3. Call SID's query API with the token; on a 401 force one refresh and try once
   more, then give up.

The on-demand refresh is passed in, so the reader itself depends only on Redis
and ``requests``; :func:`default_refresher` uses the worker's single-flight path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
import requests

from shared.token_cache import access_token_key

#: ``refresh(user_id, force)``: a fresh access token, or ``None`` when none can be had.
Refresher = Callable[[str, bool], str | None]


class NotConnected(Exception):
    """No token can be had for this user: they must connect (again) to SID."""


class QueryFailed(Exception):
    """SID's query API answered with an error that a new token does not fix."""

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


def default_refresher(user_id: str, force: bool) -> str | None:
    from worker import refresh_now

    return refresh_now(user_id, force=force)


class SidReader:
    """Reads a user's warm token and queries SID with it."""

    def __init__(
        self,
        tokens: redis.Redis,
        query_url: str,
        refresh: Refresher = default_refresher,
        timeout: float = 10.0,
    ) -> None:
        self.tokens = tokens
        self.query_url = query_url
        self.refresh = refresh
        self.timeout = timeout
        self.http = requests.Session()

    def token(self, user_id: str) -> str:
        """The user's access token: from Redis, else from an on-demand refresh."""
        cached = self.tokens.get(access_token_key(user_id))
        if cached is not None:
            return cached.decode() if isinstance(cached, bytes) else str(cached)
        return self._refreshed(user_id, force=False)

    def query(self, user_id: str, text: str, limit: int = 5) -> dict[str, Any]:
        """Ask SID's query API for the user; one forced refresh on a 401."""
        answer = self._post(self.token(user_id), text, limit)
        if answer.status_code == 401:
            answer = self._post(self._refreshed(user_id, force=True), text, limit)
        if answer.status_code != 200:
            raise QueryFailed(
                f"SID's query API answered {answer.status_code}",
                status=answer.status_code,
            )
        result: dict[str, Any] = answer.json()
        return result

    def _refreshed(self, user_id: str, *, force: bool) -> str:
        token = self.refresh(user_id, force)
        if token is None:
            raise NotConnected(f"user {user_id} has no usable SID token; reconnect")
        return token

    def _post(self, token: str, text: str, limit: int) -> requests.Response:
        return self.http.post(
            self.query_url,
            json={"query": text, "limit": limit},
            headers={"Authorization": f"Bearer {token}"},
            timeout=self.timeout,
        )
