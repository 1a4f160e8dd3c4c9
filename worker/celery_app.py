"""The Celery application, configured from the shared settings.

Operators run ``celery -A worker worker`` and ``celery -A worker beat`` and get
this configuration without flags. The configuration is read lazily, when Celery
first needs it, so importing :mod:`worker` (for :func:`worker.refresh_now`) needs
no broker.

The reliability settings below rest on one fact: **PostgreSQL, not the broker,
decides who refreshes whom.** A message is a hint carrying ``(user_id, version)``
pairs; a duplicate, late or lost message costs nothing, because the start fence
in the database lets each claim start once and a lapsed claim makes the user due
again.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery, signals
from kombu import Queue

from shared import logs
from shared import settings as settings_module
from shared.settings import Settings
from worker.refresh import check_settings, needed_at_start
from worker.scan import MAX_BATCH

REFRESH_QUEUE = "sidtokens.refresh"
SCHEDULE_QUEUE = "sidtokens.schedule"
SCAN_TASK = "sidtokens.scan"
REFRESH_TASK = "sidtokens.refresh"
REWARM_TASK = "sidtokens.rewarm"

#: Far above any task's run time, so Redis never redelivers a message that is
#: still being worked on (and never loops a delayed one).
VISIBILITY_TIMEOUT_SECONDS = 3600


def _queue(name: str) -> Queue:
    # Celery publishes to a direct queue through the default exchange, which
    # routes by queue name with no binding to look up: a FLUSHDB of a Redis
    # broker (which drops kombu's binding keys) does not strand published tasks.
    return Queue(name, routing_key=name)


def _refresh_time_limit(settings: Settings) -> float:
    """A last resort far above a full batch of slow requests and slot waits."""
    per_user = needed_at_start(settings).total_seconds() + 2 * 2.0
    return MAX_BATCH * per_user + 60


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery's settings for the worker and beat, each with the reason for it."""
    check_settings(settings)
    refresh_limit = _refresh_time_limit(settings)
    return {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        # Nothing reads task results: the results are rows and Redis keys.
        "task_ignore_result": True,
        "result_backend": None,
        # JSON only: messages carry user ids and versions, never tokens.
        "task_serializer": "json",
        "accept_content": ["json"],
        "timezone": "UTC",
        "enable_utc": True,
        # Ack after the task ran, and requeue if its process died: a lost message
        # would only delay users until their lease lapses, but a redelivered one
        # is free (the start fence turns it into a no-op if it is stale).
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # A task that failed or hit its time limit is acked, not requeued: the
        # request may have reached SID, and retries live in the database
        # (sid_refresh_at with backoff), never in broker redelivery.
        "task_acks_on_failure": True,
        "task_acks_on_timeout": True,
        # Reserve one message per thread: a prefetched message holds leases while
        # it waits, so prefetching more would let leases age in a local buffer.
        "worker_prefetch_multiplier": 1,
        # Refreshing is waiting on HTTP, PostgreSQL and Redis: threads give cheap
        # concurrency with one process, one database pool and one metrics
        # endpoint. The thread pool enforces no time limits, so the real limit is
        # the HTTP timeout (SIDTOKENS_HTTP_TIMEOUT_SECONDS), which check_settings
        # keeps well inside the lease; the limits below apply if an operator
        # chooses prefork, and are far above any normal run.
        "worker_pool": "threads",
        "worker_concurrency": settings.worker_concurrency,
        "task_time_limit": refresh_limit,
        "task_soft_time_limit": refresh_limit - 30,
        # Redis redelivers unacked messages after this; it must exceed every run
        # time by far. RabbitMQ ignores it (it redelivers on channel loss).
        "broker_transport_options": {"visibility_timeout": VISIBILITY_TIMEOUT_SECONDS},
        # SIGTERM is a warm shutdown: running refreshes finish and are stored,
        # batches stop starting new users (they are put back for other workers).
        # A second signal, or a cold shutdown, still waits this long first.
        "worker_soft_shutdown_timeout": needed_at_start(settings).total_seconds(),
        "worker_enable_soft_shutdown_on_idle": True,
        # Cancelling a running refresh on connection loss could cut a request
        # SID has already acted on; a duplicate delivery is harmless instead.
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        # Our logging (with redaction) is installed by the setup_logging signal.
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "task_queues": [_queue(REFRESH_QUEUE), _queue(SCHEDULE_QUEUE)],
        "task_default_queue": REFRESH_QUEUE,
        "task_routes": {
            SCAN_TASK: {"queue": SCHEDULE_QUEUE},
            REWARM_TASK: {"queue": SCHEDULE_QUEUE},
            REFRESH_TASK: {"queue": REFRESH_QUEUE},
        },
        "beat_schedule": _beat_schedule(settings),
        # Beat's record of last run times; one file per beat process.
        "beat_schedule_filename": settings.beat_schedule_file,
    }


def _beat_schedule(settings: Settings) -> dict[str, dict[str, Any]]:
    # Each entry expires after one period: a scan that could not run in time is
    # dropped rather than run late next to the one that replaced it.
    scan_every = settings.scan_interval_seconds
    rewarm_every = settings.rewarm_interval_seconds
    return {
        "scan for due refreshes": {
            "task": SCAN_TASK,
            "schedule": scan_every,
            "options": {"expires": scan_every},
        },
        "re-warm the token cache": {
            "task": REWARM_TASK,
            "schedule": rewarm_every,
            "options": {"expires": rewarm_every},
        },
    }


app = Celery("sidtokens", include=["worker.tasks"])
app.add_defaults(lambda: celery_config(settings_module.get()))


#: Celery loggers that write a line (with the arguments) for every task received
#: and finished; the refresh's own line is the record that matters.
_TASK_LOGGERS = ("celery.worker.strategy", "celery.app.trace")


@signals.setup_logging.connect
def _configure_logging(**_: Any) -> None:
    """Replace Celery's handlers with ours, which redact secrets."""
    settings = settings_module.get()
    logs.configure(settings)
    if settings.log_level != "DEBUG":
        for name in _TASK_LOGGERS:
            logging.getLogger(name).setLevel(logging.WARNING)
