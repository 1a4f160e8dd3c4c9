"""The worker's operator commands: ``sidtokens refresh`` and ``sidtokens rewarm``.

Each returns the process exit status: 0 when done; 1 when SID did not give the
user a fresh token; 2, with one line on stderr, when the command could not run.
Neither ever prints a token.
"""

from __future__ import annotations

import sys

from shared import runtime as runtime_module
from shared.users import UnknownUser
from worker.failures import Outcome
from worker.on_demand import refresh_user
from worker.rewarm import rewarm as rewarm_cache


def refresh(user_id: str, *, wait: float) -> int:
    """Refresh one user now, through the same single-flight path as the workers."""
    try:
        result = refresh_user(runtime_module.get(), user_id, wait=wait, force=True)
    except UnknownUser:
        print(
            f"sidtokens refresh: no user with id {user_id!r} in the users table",
            file=sys.stderr,
        )
        return 2
    if result.outcome is not Outcome.OK:
        detail = f" ({result.detail})" if result.detail else ""
        print(f"user {user_id} was not refreshed: {result.outcome}{detail}")
        return 1
    assert result.expires_at is not None
    how = result.detail or "refreshed at SID"
    print(
        f"user {user_id}: {how}; the access token expires at "
        f"{result.expires_at.isoformat(timespec='seconds')}"
    )
    return 0


def rewarm() -> int:
    """Publish every still-valid token missing from Redis, without calling SID."""
    report = rewarm_cache(runtime_module.get())
    print(
        f"checked {report.checked} connected users: {report.missing} missing from "
        f"Redis, {report.published} published, {report.made_due} made due for a "
        "refresh"
    )
    return 0
