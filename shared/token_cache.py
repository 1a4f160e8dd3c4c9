"""The Redis contract applications read: one key per user, and an event stream.

- ``sid:access_token:<user_id>`` holds the access token as a plain string, expiring
  ``SIDTOKENS_CACHE_MARGIN_SECONDS`` before the token does, so a reader that finds
  a token can use it for at least that long. A reader needs nothing but ``GET``.
- ``sid:events`` is a stream with one entry per ``connected``, ``needs_reconnect``
  and ``disconnected``, capped at about 100,000 entries.

Every write is one round trip. A publish never replaces a token that lives longer
than the one being written: a slow writer holding an older token (a re-warm that
read the database just before a refresh committed) cannot undo a newer one. Only a
new connection, which replaces the user's grant outright, publishes with
``replace=True``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import redis

from shared.errors import StorageError

ACCESS_TOKEN_KEY = "sid:access_token:{user_id}"  # noqa: S105 - a key name
EVENTS_KEY = "sid:events"
EVENTS_MAX_LENGTH = 100_000

# Set the token unless the key already holds one that expires later (or ARGV[7] says
# replace); append an event in the same call when one is given. PEXPIRETIME answers
# -2 for a missing key.
_PUBLISH = """
local written = 0
if ARGV[7] == '1' or redis.call('PEXPIRETIME', KEYS[1]) <= tonumber(ARGV[2]) then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[2])
  written = 1
end
if ARGV[3] ~= '' then
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[6], '*',
             'user_id', ARGV[3], 'event', ARGV[4], 'at', ARGV[5])
end
return written
"""


class Event(enum.StrEnum):
    CONNECTED = "connected"
    NEEDS_RECONNECT = "needs_reconnect"
    DISCONNECTED = "disconnected"


def access_token_key(user_id: str) -> str:
    return ACCESS_TOKEN_KEY.format(user_id=user_id)


@contextmanager
def _redis_errors(action: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise StorageError(
            f"Redis failed to {action} ({type(exc).__name__}); check that it is "
            "running and that REDIS_URL is right"
        ) from exc


class TokenCache:
    """Publishes access tokens for applications and appends user events."""

    def __init__(self, client: redis.Redis, *, margin: timedelta) -> None:
        self.client = client
        self.margin = margin
        self._publish = client.register_script(_PUBLISH)

    @classmethod
    def from_url(cls, url: str, *, margin_seconds: int) -> TokenCache:
        client = redis.Redis.from_url(
            url, socket_timeout=5, socket_connect_timeout=5, health_check_interval=30
        )
        return cls(client, margin=timedelta(seconds=margin_seconds))

    def cache_until(self, expires_at: datetime) -> datetime:
        """When the published copy of a token expiring at ``expires_at`` disappears."""
        return expires_at - self.margin

    def is_publishable(self, expires_at: datetime, now: datetime | None = None) -> bool:
        """Whether a token has more than the cache margin left."""
        return self.cache_until(expires_at) > (now or datetime.now(UTC))

    def publish(
        self,
        user_id: str,
        access_token: str,
        expires_at: datetime,
        *,
        event: Event | None = None,
        replace: bool = False,
    ) -> bool:
        """Publish a user's token, with an event if given, in one round trip.

        Returns whether the token was written: ``False`` when it has less than the
        margin left (the key is then left alone) or, unless ``replace``, a
        longer-lived one is there.
        """
        if not self.is_publishable(expires_at):
            if event is not None:
                self.append_event(user_id, event)
            return False
        with _redis_errors("publish an access token"):
            written = self._publish(
                keys=[access_token_key(user_id), EVENTS_KEY],
                args=[
                    access_token,
                    _epoch_ms(self.cache_until(expires_at)),
                    user_id if event else "",
                    str(event or ""),
                    _now_iso(),
                    EVENTS_MAX_LENGTH,
                    "1" if replace else "0",
                ],
            )
        return bool(written)

    def publish_many(self, tokens: Iterable[tuple[str, str, datetime]]) -> int:
        """Publish ``(user_id, access_token, expires_at)`` triples in one pipeline.

        Tokens with less than the margin left are skipped. Returns how many were
        written.
        """
        publishable = [item for item in tokens if self.is_publishable(item[2])]
        if not publishable:
            return 0
        with _redis_errors("publish access tokens"):
            pipe = self.client.pipeline(transaction=False)
            for user_id, access_token, expires_at in publishable:
                self._publish(
                    keys=[access_token_key(user_id), EVENTS_KEY],
                    args=[
                        access_token,
                        _epoch_ms(self.cache_until(expires_at)),
                        "",
                        "",
                        "",
                        0,
                        "0",
                    ],
                    client=pipe,
                )
            results = pipe.execute()
        return sum(1 for written in results if written)

    def missing(self, user_ids: list[str]) -> list[str]:
        """Which of ``user_ids`` have no published token, in one round trip."""
        if not user_ids:
            return []
        with _redis_errors("check published tokens"):
            pipe = self.client.pipeline(transaction=False)
            for user_id in user_ids:
                pipe.exists(access_token_key(user_id))
            found = pipe.execute()
        return [
            user_id
            for user_id, exists in zip(user_ids, found, strict=True)
            if not exists
        ]

    def delete(self, user_id: str, *, event: Event | None = None) -> None:
        """Remove a user's token, with an event if given, in one round trip."""
        with _redis_errors("delete an access token"):
            pipe = self.client.pipeline(transaction=True)
            pipe.delete(access_token_key(user_id))
            if event is not None:
                self._add_event(pipe, user_id, event)
            pipe.execute()

    def append_event(self, user_id: str, event: Event) -> None:
        with _redis_errors("append an event"):
            self._add_event(self.client, user_id, event)

    def _add_event(
        self, target: redis.Redis | redis.client.Pipeline, user_id: str, event: Event
    ) -> None:
        target.xadd(
            EVENTS_KEY,
            {"user_id": user_id, "event": str(event), "at": _now_iso()},
            maxlen=EVENTS_MAX_LENGTH,
            approximate=True,
        )

    def ping(self) -> bool:
        with _redis_errors("answer a ping"):
            return bool(self.client.ping())


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def _now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
