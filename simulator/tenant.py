"""One simulated Auth0 tenant: the provider, its rate limit, faults and counters.

The start-up settings are kept so that ``POST /admin/reset`` can return the tenant to
exactly the state it started in, which is what lets one simulator process serve many
tests in turn.
"""

from __future__ import annotations

import dataclasses
import time

from simulator.faults import FaultInjector, FaultSettings
from simulator.grants import Client
from simulator.provider import Clock, Provider, ProviderConfig
from simulator.ratelimit import TokenBucket
from simulator.stats import Stats


@dataclasses.dataclass(frozen=True)
class TenantSettings:
    """How the tenant starts, and what a reset returns it to."""

    client: Client
    config: ProviderConfig
    faults: FaultSettings
    audiences: frozenset[str]
    seed: int | None = None


class Tenant:
    """The mutable state behind every route."""

    def __init__(self, settings: TenantSettings, clock: Clock = time.time) -> None:
        self.settings = settings
        self.clock = clock
        self.started_at = clock()
        self.stats = Stats()
        self.provider = Provider(
            settings.client,
            dataclasses.replace(settings.config),
            audiences=settings.audiences,
            stats=self.stats,
            clock=clock,
        )
        self.faults = FaultInjector(settings.faults, settings.seed)
        self.rate_limit = self._bucket(settings.faults)

    def _bucket(self, faults: FaultSettings) -> TokenBucket | None:
        if faults.rate_limit_per_second == 0:
            return None
        return TokenBucket(faults.rate_limit_per_second, faults.burst, self.clock)

    def apply_faults(self, faults: FaultSettings) -> None:
        """Use new fault settings; a changed rate limit starts with a full bucket."""
        previous = self.faults.settings
        self.faults.configure(faults)
        if (previous.rate_limit_per_second, previous.burst) != (
            faults.rate_limit_per_second,
            faults.burst,
        ):
            self.rate_limit = self._bucket(faults)

    def reset(self) -> None:
        """Back to the start-up state: no tokens, no counts, start-up settings."""
        self.provider.reset()
        self.provider.config = dataclasses.replace(self.settings.config)
        self.stats.reset()
        self.faults = FaultInjector(self.settings.faults, self.settings.seed)
        self.rate_limit = self._bucket(self.settings.faults)
