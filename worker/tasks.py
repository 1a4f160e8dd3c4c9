"""The Celery tasks and the worker's start and stop hooks.

Task arguments are user ids and claim versions, never tokens: messages sit in the
broker in the clear and Celery logs what it receives.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from celery import signals

from shared import runtime as runtime_module
from shared import settings as settings_module
from shared.runtime import Runtime
from shared.settings import Settings
from worker import claims
from worker.celery_app import (
    REFRESH_TASK,
    REWARM_TASK,
    SCAN_TASK,
    app,
)
from worker.claims import Claim
from worker.refresh import needed_at_start, refresh_claimed
from worker.rewarm import rewarm_once
from worker.scan import scan

log = logging.getLogger("sidtokens.worker")

#: Set when the worker begins a warm shutdown: batches stop starting new users.
stopping = threading.Event()


@app.task(name=SCAN_TASK)
def scan_due() -> None:
    """Claim due users and dispatch their refreshes."""
    runtime = runtime_module.get()
    report = scan(runtime, dispatch=_dispatch, rewarm=_dispatch_rewarm)
    if report.claimed:
        log.debug(
            "scan claimed %d users in %d batches; %d due left",
            report.claimed,
            report.batches,
            report.due_left,
        )


def _dispatch(batch: Sequence[Claim], expires: timedelta) -> None:
    pairs = [[claim.user_id, claim.version] for claim in batch]
    refresh_batch.apply_async(args=(pairs,), expires=expires.total_seconds())


def _dispatch_rewarm() -> None:
    rewarm_cache.apply_async()


@app.task(name=REFRESH_TASK)
def refresh_batch(pairs: list[list[Any]]) -> None:
    """Refresh a batch of claimed users, one after the other."""
    runtime = runtime_module.get()
    rng = random.Random()
    batch = [Claim(str(user_id), int(version)) for user_id, version in pairs]
    renewal = _Renewal(runtime.settings)
    for position, claim in enumerate(batch):
        if stopping.is_set():
            _hand_back(batch[position:])
            return
        renewal.keep_alive(runtime, batch[position + 1 :])
        try:
            refresh_claimed(runtime, claim, rng=rng)
        except Exception:
            # One user's surprise must not strand the rest of the batch; its
            # lease lapses and the next scan tries it again.
            log.exception("refresh of user %s failed unexpectedly", claim.user_id)


class _Renewal:
    """Renews a batch's waiting claims before they could be too short to start."""

    def __init__(self, settings: Settings) -> None:
        self.lease = timedelta(seconds=settings.refresh_lease_seconds)
        spare = self.lease - needed_at_start(settings)
        self.every = spare.total_seconds() / 2
        self.last = time.monotonic()

    def keep_alive(self, runtime: Runtime, waiting: Sequence[Claim]) -> None:
        if waiting and time.monotonic() - self.last >= self.every:
            claims.renew(runtime.sessions, waiting, lease=self.lease)
            self.last = time.monotonic()


def _hand_back(batch: Sequence[Claim]) -> None:
    """Release claims this worker will not start, so others take them at once."""
    runtime = runtime_module.get()
    for claim in batch:
        claims.put_back(runtime.sessions, claim, delay=timedelta(0))
    log.info("shutting down: handed back %d claimed users", len(batch))


@app.task(name=REWARM_TASK)
def rewarm_cache() -> None:
    """Publish still-valid tokens missing from Redis, once per period."""
    settings = settings_module.get()
    period = timedelta(seconds=settings.rewarm_interval_seconds * 0.8)
    rewarm_once(runtime_module.get(), period)


@signals.worker_shutting_down.connect
def _stop_starting_refreshes(**_: Any) -> None:
    stopping.set()


@signals.worker_ready.connect
def _serve_metrics(**_: Any) -> None:
    """Expose the Prometheus series when SIDTOKENS_WORKER_METRICS_PORT is set."""
    port = settings_module.get().worker_metrics_port
    if port > 0:
        from prometheus_client import start_http_server

        start_http_server(port)
        log.info("serving metrics on port %d", port)
