"""What operators and orchestrators ask the web tier: liveness, readiness, metrics."""

from __future__ import annotations

import hmac

import sqlalchemy as sa
from flask import Blueprint, Response, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError

from shared.errors import StorageError
from shared.runtime import Runtime
from web import handles

blueprint = Blueprint("operations", __name__)


def _database_answers(runtime: Runtime) -> bool:
    try:
        with runtime.sessions() as session:
            session.execute(sa.text("SELECT 1"))
    except SQLAlchemyError:
        return False
    return True


def _redis_answers(runtime: Runtime) -> bool:
    try:
        return runtime.cache.ping()
    except StorageError:
        return False


@blueprint.get("/healthz")
def healthz() -> Response:
    """200 while the process can answer at all."""
    return Response("ok\n", mimetype="text/plain")


@blueprint.get("/readyz")
def readyz() -> tuple[Response, int]:
    """200 only when PostgreSQL and Redis both answer; 503 naming what does not."""
    current = handles.runtime()
    checks = {
        "database": _database_answers(current),
        "redis": _redis_answers(current),
    }
    body = {name: "ok" if fine else "unreachable" for name, fine in checks.items()}
    return jsonify(body), 200 if all(checks.values()) else 503


def _is_authorised(expected: str | None) -> bool:
    """Without SIDTOKENS_STATUS_TOKEN metrics are open; with it, a bearer is needed."""
    if expected is None:
        return True
    presented = request.headers.get("Authorization", "")
    return hmac.compare_digest(presented.encode(), f"Bearer {expected}".encode())


@blueprint.get("/metrics")
def metrics() -> Response:
    """This process's Prometheus series."""
    if not _is_authorised(handles.runtime().settings.status_token):
        return Response(
            "a bearer token is required\n", status=401, mimetype="text/plain"
        )
    return Response(generate_latest(), content_type=CONTENT_TYPE_LATEST)
