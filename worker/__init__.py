"""The refresh worker: keeps every connected user's SID access token warm in Redis.

``celery -A worker worker`` runs refreshes, ``celery -A worker beat`` triggers the
scan and the re-warm. :func:`refresh_now` is for applications that find no token.
See ``docs/worker.md`` for the design.
"""

from worker.celery_app import app
from worker.on_demand import refresh_now

__all__ = ["app", "refresh_now"]
