"""The Redis contract: key, value and expiry exactly as documented, events capped."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis

from shared.token_cache import (
    EVENTS_KEY,
    EVENTS_MAX_LENGTH,
    Event,
    TokenCache,
    access_token_key,
)

MARGIN = timedelta(seconds=60)


@pytest.fixture
def cache(redis_url: str) -> Iterator[TokenCache]:
    client = redis.Redis.from_url(redis_url)
    yield TokenCache(client, margin=MARGIN)
    client.close()


@pytest.fixture
def user_id(redis_client: redis.Redis) -> Iterator[str]:
    """A user id of this test alone; its key and events are removed afterwards."""
    user = f"cache-{secrets.token_hex(4)}"
    yield user
    redis_client.delete(access_token_key(user))
    for entry_id, fields in redis_client.xrange(EVENTS_KEY):
        if fields["user_id"] == user:
            redis_client.xdel(EVENTS_KEY, entry_id)


def _events(client: redis.Redis, user_id: str) -> list[dict[str, str]]:
    return [f for _, f in client.xrange(EVENTS_KEY) if f["user_id"] == user_id]


def test_the_token_is_a_plain_string_that_expires_a_margin_before_it_does(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """GET returns the token; the key's expiry is the token's minus the margin."""
    expires_at = datetime.now(UTC) + timedelta(hours=1)

    written = cache.publish(user_id, "at-one", expires_at)

    assert written
    assert redis_client.get(f"sid:access_token:{user_id}") == "at-one"
    expected_ms = int((expires_at - MARGIN).timestamp() * 1000)
    assert redis_client.pexpiretime(access_token_key(user_id)) == expected_ms


def test_a_longer_lived_token_is_never_replaced_by_an_older_one(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """A slow writer with an earlier expiry cannot undo a fresher token."""
    now = datetime.now(UTC)
    cache.publish(user_id, "at-new", now + timedelta(hours=2))

    written = cache.publish(user_id, "at-old", now + timedelta(hours=1))

    assert not written
    assert redis_client.get(access_token_key(user_id)) == "at-new"


def test_a_token_with_less_than_the_margin_left_is_not_published(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """A token about to expire never reaches readers."""
    written = cache.publish(user_id, "at-late", datetime.now(UTC) + MARGIN / 2)

    assert not written
    assert redis_client.exists(access_token_key(user_id)) == 0


def test_publish_and_delete_append_events_with_their_fields(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """connected on publish, disconnected on delete: user_id, event and a UTC time."""
    cache.publish(
        user_id, "at", datetime.now(UTC) + timedelta(hours=1), event=Event.CONNECTED
    )

    cache.delete(user_id, event=Event.DISCONNECTED)

    events = _events(redis_client, user_id)
    assert [e["event"] for e in events] == ["connected", "disconnected"]
    for event in events:
        assert event["at"].endswith("Z")
        assert datetime.fromisoformat(event["at"]) <= datetime.now(UTC)
    assert redis_client.exists(access_token_key(user_id)) == 0


def test_the_event_stream_is_capped_near_a_hundred_thousand_entries(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """An append to a stream past the cap trims it back to about the cap."""
    pipe = redis_client.pipeline(transaction=False)
    for _ in range(EVENTS_MAX_LENGTH + 1_000):
        pipe.xadd(EVENTS_KEY, {"user_id": "filler", "event": "connected", "at": "-"})
    pipe.execute()

    cache.append_event(user_id, Event.NEEDS_RECONNECT)

    length = redis_client.xlen(EVENTS_KEY)
    redis_client.delete(EVENTS_KEY)
    # Approximate trimming (MAXLEN ~) cuts whole stream nodes of 100 entries.
    assert EVENTS_MAX_LENGTH <= length <= EVENTS_MAX_LENGTH + 100


def test_publish_many_writes_only_what_is_missing_or_older(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """The re-warm's pipelined publish keeps the same rules as a single publish."""
    now = datetime.now(UTC)
    other = f"{user_id}-b"
    cache.publish(user_id, "at-fresh", now + timedelta(hours=2))

    written = cache.publish_many(
        [
            (user_id, "at-stale", now + timedelta(hours=1)),
            (other, "at-b", now + timedelta(hours=1)),
        ]
    )

    assert written == 1
    assert redis_client.get(access_token_key(user_id)) == "at-fresh"
    assert redis_client.get(access_token_key(other)) == "at-b"
    redis_client.delete(access_token_key(other))


def test_a_new_connection_replaces_even_a_longer_lived_token(
    cache: TokenCache, redis_client: redis.Redis, user_id: str
) -> None:
    """replace=True, for a reconnect, overwrites in the same single call."""
    now = datetime.now(UTC)
    cache.publish(user_id, "at-old-grant", now + timedelta(hours=2))

    written = cache.publish(
        user_id, "at-new-grant", now + timedelta(hours=1), replace=True
    )

    assert written
    assert redis_client.get(access_token_key(user_id)) == "at-new-grant"
