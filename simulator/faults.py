"""Injected failures: what a refresher meets on a bad day at SID, on demand.

Each request to an endpoint named in ``apply_to`` first waits ``latency_ms`` plus up
to ``jitter_ms``, then draws at most one fault from the rates below (their sum is at
most 1). A drawn fault *replaces* processing, so no code is spent and no token rotated,
with one deliberate exception: ``drop_response_after_processing`` processes the request
and then loses the answer, the case where the provider rotated a refresh token the
client never received.

The draws come from a seeded :class:`random.Random`, so a run can be repeated.

The rate-limit settings live here too, because tests tighten them at run time through
the same ``/admin/faults`` call.
"""

from __future__ import annotations

import dataclasses
import enum
import random

ENDPOINTS = ("token", "revoke", "query")
ERROR_STATUSES = (500, 502, 503, 504)
RATE_LIMIT_STATUSES = (429, 500)


class Fault(enum.StrEnum):
    """A failure that replaces (or, for ``DROP_RESPONSE``, follows) processing."""

    ERROR = "error"
    TIMEOUT = "timeout"
    MALFORMED = "malformed"
    TRUNCATED = "truncated"
    HTML_ERROR = "html_error"
    DROP_RESPONSE = "drop_response_after_processing"


@dataclasses.dataclass
class FaultSettings:
    """Everything ``/admin/faults`` can change; the defaults inject nothing.

    ``timeout_hold_seconds`` is how long a timed-out request is held before the
    connection is closed without an answer; ``drop_hold_seconds`` is the same for a
    dropped response (0: close at once, as a reset connection would).
    ``rate_limit_per_second`` of 0 turns the limit off; ``rate_limit_burst`` of
    ``None`` equals the rate; ``rate_limit_status`` 500 reproduces an observed quirk.
    """

    latency_ms: int = 0
    jitter_ms: int = 0
    error_rate: float = 0.0
    error_status: int = 503
    timeout_rate: float = 0.0
    timeout_hold_seconds: float = 30.0
    malformed_rate: float = 0.0
    truncated_rate: float = 0.0
    html_error_rate: float = 0.0
    html_error_status: int = 502
    drop_response_rate: float = 0.0
    drop_hold_seconds: float = 0.0
    apply_to: tuple[str, ...] = ("token",)
    rate_limit_per_second: float = 30.0
    rate_limit_burst: int | None = None
    rate_limit_status: int = 429
    retry_after: bool = False

    def __post_init__(self) -> None:
        self._check_rates()
        self._check_durations()
        self._check_choices()

    def _check_rates(self) -> None:
        rates = self.rates()
        for fault, rate in rates.items():
            if not 0 <= rate <= 1:
                raise ValueError(
                    f"{fault.value}_rate must be between 0 and 1, not {rate}"
                )
        if sum(rates.values()) > 1:
            raise ValueError("the fault rates add up to more than 1")

    def _check_durations(self) -> None:
        durations = {
            "latency_ms": self.latency_ms,
            "jitter_ms": self.jitter_ms,
            "timeout_hold_seconds": self.timeout_hold_seconds,
            "drop_hold_seconds": self.drop_hold_seconds,
            "rate_limit_per_second": self.rate_limit_per_second,
        }
        for name, value in durations.items():
            if value < 0:
                raise ValueError(f"{name} must not be negative, not {value}")
        if self.rate_limit_burst is not None and self.rate_limit_burst < 1:
            raise ValueError("rate_limit_burst must be at least 1")

    def _check_choices(self) -> None:
        unknown = set(self.apply_to) - set(ENDPOINTS)
        if unknown:
            raise ValueError(
                f"apply_to names unknown endpoints {sorted(unknown)}; "
                f"choose from {', '.join(ENDPOINTS)}"
            )
        if self.error_status not in ERROR_STATUSES:
            raise ValueError(f"error_status must be one of {ERROR_STATUSES}")
        if self.html_error_status not in ERROR_STATUSES:
            raise ValueError(f"html_error_status must be one of {ERROR_STATUSES}")
        if self.rate_limit_status not in RATE_LIMIT_STATUSES:
            raise ValueError(f"rate_limit_status must be one of {RATE_LIMIT_STATUSES}")

    def rates(self) -> dict[Fault, float]:
        return {
            Fault.ERROR: self.error_rate,
            Fault.TIMEOUT: self.timeout_rate,
            Fault.MALFORMED: self.malformed_rate,
            Fault.TRUNCATED: self.truncated_rate,
            Fault.HTML_ERROR: self.html_error_rate,
            Fault.DROP_RESPONSE: self.drop_response_rate,
        }

    @property
    def burst(self) -> int:
        if self.rate_limit_burst is not None:
            return self.rate_limit_burst
        return max(1, round(self.rate_limit_per_second))


class FaultInjector:
    """Decides, per request, the delay and the fault, from a seeded generator."""

    def __init__(self, settings: FaultSettings, seed: int | None = None) -> None:
        self.random = random.Random(seed)
        self.configure(settings)

    def configure(self, settings: FaultSettings) -> None:
        self.settings = settings
        self._endpoints = frozenset(settings.apply_to)
        self._rates = [(f, r) for f, r in settings.rates().items() if r > 0]
        self._delays = settings.latency_ms > 0 or settings.jitter_ms > 0

    def applies_to(self, endpoint: str) -> bool:
        return endpoint in self._endpoints and (self._delays or bool(self._rates))

    def delay(self) -> float:
        """Seconds to wait before answering: the fixed latency plus jitter."""
        if not self._delays:
            return 0.0
        jitter = self.random.uniform(0, self.settings.jitter_ms)
        return (self.settings.latency_ms + jitter) / 1000

    def draw(self) -> Fault | None:
        """At most one fault, each with its configured probability."""
        if not self._rates:
            return None
        point = self.random.random()
        for fault, rate in self._rates:
            if point < rate:
                return fault
            point -= rate
        return None
