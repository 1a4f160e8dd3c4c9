"""One limit on SID's token endpoint for every worker, and the pauses that stop them.

Celery's own ``rate_limit`` is per worker instance, so the limit lives in Redis and
every worker on every machine asks it before each token request:

- **Token requests** go through a token bucket refilled at
  ``SIDTOKENS_TOKEN_RATE_LIMIT`` per second with a small burst. A caller that finds
  the bucket empty *reserves* the next slot and sleeps until it comes, as long as
  that is a short wait; otherwise it is told how long to come back after. Slots are
  handed out in order, so a burst of due tokens is smoothed, not rejected.
- **Claims** made by the scan draw on a second bucket with the same rate: a scan
  never claims more users than the token bucket will let through before their
  leases lapse, however many beats run and however large the backlog.
- **Pauses.** A 429 from SID stops every worker until the reset time SID gave
  (``sid:ratelimit:pause_until``). A rejected client (401, ``invalid_client``)
  pauses every worker running *that* client configuration, with a backoff that
  doubles on each repeat: a worker restarted with corrected credentials has a
  different fingerprint and is not held back.

The bucket state and the pause checks run in one Lua script on Redis's clock
(``TIME``), so workers with skewed clocks agree and a request is one round trip.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import math
from datetime import UTC, datetime, timedelta

import redis

from shared.settings import Settings

TOKEN_BUCKET_KEY = "sid:ratelimit:token_bucket"  # noqa: S105 - a key name
CLAIM_BUCKET_KEY = "sid:ratelimit:claim_bucket"
RATE_LIMIT_PAUSE_KEY = "sid:ratelimit:pause_until"
CLIENT_PAUSE_KEY = "sid:client:pause_until:{fingerprint}"
CLIENT_STRIKES_KEY = "sid:client:strikes:{fingerprint}"

#: The token bucket holds this many seconds of the rate: short bursts only, so the
#: provider's own per-second window never sees much more than the configured rate.
TOKEN_BURST_SECONDS = 0.25
#: The first pause after a rejected client, doubled on each repeat up to the cap.
CLIENT_PAUSE_FIRST = timedelta(seconds=15)
CLIENT_PAUSE_CAP = timedelta(minutes=10)
#: Repeated rejections are counted as one streak while they come this close together.
CLIENT_STRIKES_MEMORY = timedelta(hours=1)

# KEYS: bucket, then any number of pause keys holding an epoch-ms deadline.
# ARGV: rate per second, burst, mode, amount, longest wait in ms.
# Modes: 'reserve' one slot (wait allowed up to the longest wait), 'take' up to
# `amount` whole tokens now, 'refund' `amount` tokens.
# Returns {status, value}: status 0 = granted (value = ms to wait, or tokens taken),
# 1 = the wait would be too long (value = ms until a slot), 2 = paused (value = ms
# until the pause ends).
_BUCKET = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + math.floor(tonumber(clock[2]) / 1000)
local mode = ARGV[3]
if mode ~= 'refund' then
  for index = 2, #KEYS do
    local deadline = tonumber(redis.call('GET', KEYS[index]) or '0')
    if deadline and deadline > now then
      return {2, deadline - now}
    end
  end
end
local per_ms = tonumber(ARGV[1]) / 1000
local burst = tonumber(ARGV[2])
local amount = tonumber(ARGV[4])
local longest_wait = tonumber(ARGV[5])
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1]) or burst
local at = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - at) * per_ms)
local status, value = 0, 0
if mode == 'reserve' then
  local after = tokens - 1
  local wait = math.ceil(math.max(0, -after) / per_ms)
  if wait > longest_wait then
    status, value = 1, wait
  else
    tokens, value = after, wait
  end
elseif mode == 'take' then
  value = math.max(0, math.min(amount, math.floor(tokens)))
  tokens = tokens - value
else
  tokens = math.min(burst, tokens + amount)
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / per_ms) + longest_wait + 1000)
return {status, value}
"""

# Move a pause deadline later, never earlier. KEYS: pause key. ARGV: epoch ms.
_EXTEND_PAUSE = """
local current = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local wanted = tonumber(ARGV[1])
if wanted > current then
  redis.call('SET', KEYS[1], ARGV[1], 'PXAT', ARGV[1])
  return wanted
end
return current
"""


@dataclasses.dataclass(frozen=True)
class Admission:
    """The answer to "may I call SID's token endpoint?".

    ``wait`` is how long to sleep before the granted request, or, when not granted,
    how long until asking again makes sense; ``paused`` says a pause caused it.
    """

    granted: bool
    wait: timedelta
    paused: bool = False


def client_fingerprint(settings: Settings) -> str:
    """A short digest of the client configuration a rejection is about."""
    material = "\n".join(
        [settings.client_id or "", settings.client_secret or "", settings.token_url]
    )
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class RateLimit:
    """The shared limit and pauses for calls to SID's token endpoint."""

    def __init__(self, client: redis.Redis, settings: Settings) -> None:
        self.client = client
        self.rate = settings.token_rate_limit_per_second
        self.token_burst = max(1.0, self.rate * TOKEN_BURST_SECONDS)
        self.claim_burst = max(1.0, self.rate * _claim_horizon(settings))
        fingerprint = client_fingerprint(settings)
        self.client_pause_key = CLIENT_PAUSE_KEY.format(fingerprint=fingerprint)
        self.client_strikes_key = CLIENT_STRIKES_KEY.format(fingerprint=fingerprint)
        self._bucket = client.register_script(_BUCKET)
        self._extend_pause = client.register_script(_EXTEND_PAUSE)

    @property
    def _pause_keys(self) -> list[str]:
        return [RATE_LIMIT_PAUSE_KEY, self.client_pause_key]

    def reserve(self, longest_wait: timedelta) -> Admission:
        """Reserve the next token request slot, waiting at most ``longest_wait``."""
        status, value = self._run(
            TOKEN_BUCKET_KEY, self.token_burst, "reserve", 1, longest_wait
        )
        wait = timedelta(milliseconds=value)
        return Admission(granted=status == 0, wait=wait, paused=status == 2)

    def take_claims(self, wanted: int) -> int | timedelta:
        """Take up to ``wanted`` claims now; a pause answers with its remaining time."""
        status, value = self._run(
            CLAIM_BUCKET_KEY, self.claim_burst, "take", wanted, timedelta(0)
        )
        if status == 2:
            return timedelta(milliseconds=value)
        return value

    def refund_claims(self, unused: int) -> None:
        """Give back claims taken but not used (fewer users were due)."""
        if unused > 0:
            self._run(
                CLAIM_BUCKET_KEY, self.claim_burst, "refund", unused, timedelta(0)
            )

    def paused_for(self) -> timedelta:
        """How long calls to SID stay paused from now (zero when they are not)."""
        now_ms = _epoch_ms(datetime.now(UTC))
        deadlines = [int(raw) for raw in self.client.mget(self._pause_keys) if raw]
        return timedelta(milliseconds=max([0, *(d - now_ms for d in deadlines)]))

    def pause_for_rate_limit(self, until: datetime) -> datetime:
        """Stop every worker until ``until``; returns the pause's (maybe later) end."""
        deadline = self._extend_pause(
            keys=[RATE_LIMIT_PAUSE_KEY], args=[_epoch_ms(until)]
        )
        return datetime.fromtimestamp(int(deadline) / 1000, UTC)

    def pause_for_rejected_client(self) -> datetime:
        """Stop workers with this client configuration, longer on each repeat."""
        strikes = int(self.client.incr(self.client_strikes_key))
        self.client.pexpire(
            self.client_strikes_key, int(CLIENT_STRIKES_MEMORY.total_seconds() * 1000)
        )
        pause = min(CLIENT_PAUSE_CAP, CLIENT_PAUSE_FIRST * 2 ** min(strikes - 1, 16))
        until = datetime.now(UTC) + pause
        deadline = self._extend_pause(
            keys=[self.client_pause_key], args=[_epoch_ms(until)]
        )
        return datetime.fromtimestamp(int(deadline) / 1000, UTC)

    def _run(
        self, bucket: str, burst: float, mode: str, amount: int, wait: timedelta
    ) -> tuple[int, int]:
        status, value = self._bucket(
            keys=[bucket, *self._pause_keys],
            args=[
                self.rate,
                burst,
                mode,
                amount,
                math.ceil(wait.total_seconds() * 1000),
            ],
        )
        return int(status), int(value)


@functools.lru_cache(maxsize=8)
def rate_limit_for(client: redis.Redis, settings: Settings) -> RateLimit:
    """The limit for one Redis client and settings, built once per process.

    Every refresh asks it; building it registers its scripts, which is done once.
    """
    return RateLimit(client, settings)


def _claim_horizon(settings: Settings) -> float:
    """How many seconds of the rate one scan may claim at most.

    Two scan intervals, so a missed or late scan is caught up, but never more than
    the workers can start within half a lease: claims waiting in the broker longer
    than that would lapse before they are worked on.
    """
    half_lease = settings.refresh_lease_seconds / 2
    return max(1.0, min(2 * settings.scan_interval_seconds, half_lease))
