"""Counters that let a test prove what the provider saw, not just what the client did.

The most telling one is ``refresh_token_uses``: how many refresh requests the state
machine processed for each refresh token value. A correct refresher presents every
value once, so a test asserts ``max == 1``. Requests refused before processing (rate
limited, or answered by an injected fault) do not count: retrying them is correct.
"""

from __future__ import annotations

from collections import Counter

SCALARS = (
    "token_requests",
    "revoke_requests",
    "query_requests",
    "codes_issued",
    "codes_exchanged",
    "code_reuse",
    "reuse_detections",
    "leeway_reuses",
    "families_revoked",
    "families_evicted",
    "grants_revoked",
    "user_revocations",
    "rate_limited",
)
# Each group counts requests by outcome; the listed outcomes are always reported.
GROUPS = {
    "code_exchanges": ("ok", "invalid_grant", "invalid_client", "invalid_request"),
    "refreshes": (
        "ok",
        "invalid_grant",
        "invalid_client",
        "invalid_request",
        "invalid_scope",
    ),
    "revokes": (
        "refresh_token",
        "access_token",
        "unknown",
        "invalid_client",
        "invalid_request",
    ),
    "queries": ("ok", "unauthorized", "invalid_request"),
    "consents": ("approved", "denied"),
    "faults_injected": (
        "latency",
        "error",
        "timeout",
        "malformed",
        "truncated",
        "html_error",
        "drop_response_after_processing",
    ),
}


class Stats:
    """In-memory counters, cheap enough to update on every request."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.counters: Counter[str] = Counter()
        self.outcomes: dict[str, Counter[str]] = {name: Counter() for name in GROUPS}
        self.refresh_token_uses: Counter[str] = Counter()

    def count(self, name: str, amount: int = 1) -> None:
        self.counters[name] += amount

    def outcome(self, group: str, outcome: str) -> None:
        self.outcomes[group][outcome] += 1

    def refresh_token_used(self, value: str) -> None:
        self.refresh_token_uses[value] += 1

    def snapshot(self) -> dict[str, object]:
        """Every counter, zeros included, so readers never need ``.get``."""
        snapshot: dict[str, object] = {name: self.counters[name] for name in SCALARS}
        for group, known in GROUPS.items():
            counted = self.outcomes[group]
            snapshot[group] = {name: counted[name] for name in (*known, *counted)}
        snapshot["refresh_token_uses"] = self._uses_histogram()
        return snapshot

    def _uses_histogram(self) -> dict[str, object]:
        # Keyed by use count only: token values never leave the simulator.
        histogram = Counter(self.refresh_token_uses.values())
        return {
            "tokens": len(self.refresh_token_uses),
            "max": max(histogram, default=0),
            "histogram": {str(uses): histogram[uses] for uses in sorted(histogram)},
        }
