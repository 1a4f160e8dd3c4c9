"""Prometheus series that web and worker processes export.

Every name starts with ``sidtokens_``; the README lists them with their meaning.
Counters and histograms are updated where the work happens; the gauges that
describe the whole table (users by state, due backlog, oldest due lag) are set by
the scan, which reads them from the database anyway.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

REFRESHES = Counter(
    "sidtokens_refreshes_total",
    "Refresh attempts by outcome: ok, refused, misconfigured, rate_limited, "
    "unavailable, malformed, fenced (lost its claim), skipped.",
    ["outcome"],
)
REFRESH_SECONDS = Histogram(
    "sidtokens_refresh_duration_seconds",
    "Time from claim check to committed result for one refresh.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
TOKEN_REQUESTS = Counter(
    "sidtokens_token_requests_total",
    "Requests sent to SID's token endpoint, by grant type and HTTP status class.",
    ["grant_type", "status"],
)
RATE_LIMITED = Counter(
    "sidtokens_rate_limited_total",
    "429 answers (or 5xx with an exhausted limit) from SID.",
)
CACHE_WRITES = Counter(
    "sidtokens_cache_writes_total",
    "Access tokens written to Redis, by source: connect, refresh, rewarm.",
    ["source"],
)
CONNECTS = Counter(
    "sidtokens_connects_total",
    "Connect callbacks by outcome: connected, access_denied, provider_refused, "
    "provider_unavailable, rejected.",
    ["outcome"],
)
SCAN_SECONDS = Histogram(
    "sidtokens_scan_duration_seconds",
    "Time one scan takes to claim due users and dispatch their refreshes.",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
)
CLAIMED = Counter("sidtokens_claimed_total", "Users claimed for refresh by scans.")
DUE_BACKLOG = Gauge(
    "sidtokens_due_backlog", "Connected users whose refresh is due and not claimed."
)
OLDEST_DUE_LAG = Gauge(
    "sidtokens_oldest_due_lag_seconds",
    "How long the oldest unclaimed due refresh has been waiting.",
)
USERS = Gauge("sidtokens_users", "Users by sid_status.", ["status"])
