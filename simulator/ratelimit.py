"""The token bucket in front of ``/oauth/token`` and ``/oauth/revoke`` (spec §6).

Auth0 refills its buckets on a fixed window, "at the top of each second": a burst
drains the bucket and nothing more gets through until the next whole second. The
``x-ratelimit-reset`` header therefore names that second, in epoch seconds.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable


@dataclasses.dataclass(frozen=True, slots=True)
class Allowance:
    """The bucket's answer to one request, and the headers that describe it."""

    allowed: bool
    limit: int
    remaining: int
    reset: int

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit": str(self.limit),
            "x-ratelimit-remaining": str(self.remaining),
            "x-ratelimit-reset": str(self.reset),
        }

    def retry_after(self, now: float) -> int:
        """Whole seconds until the bucket refills, never less than one."""
        return max(1, math.ceil(self.reset - now))


class TokenBucket:
    """``rate`` requests per second on average, ``burst`` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.time
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self._tokens = float(burst)
        self._second = math.floor(clock())

    def take(self) -> Allowance:
        """Spend one request from the bucket if it holds one."""
        self._refill(math.floor(self.clock()))
        allowed = self._tokens >= 1
        if allowed:
            self._tokens -= 1
        return Allowance(
            allowed=allowed,
            limit=self.burst,
            remaining=int(self._tokens),
            reset=self._second + 1,
        )

    def _refill(self, second: int) -> None:
        if second > self._second:
            elapsed = second - self._second
            self._tokens = min(self.burst, self._tokens + self.rate * elapsed)
            self._second = second
