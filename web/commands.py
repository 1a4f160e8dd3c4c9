"""The web tier's operator commands: ``sidtokens connect-url`` and ``disconnect``.

Each returns the process exit status: 0 when done, 2 with one line on stderr that
says what to do when not.
"""

from __future__ import annotations

import sys

from shared import runtime
from shared.errors import ProviderError
from shared.users import UnknownUser
from web import connection, links


def _fail(command: str, message: str) -> int:
    print(f"sidtokens {command}: {message}", file=sys.stderr)
    return 2


def connect_url(user_id: str) -> int:
    """Print a signed connect link for an existing user."""
    current = runtime.get()
    if not connection.user_exists(current, user_id):
        return _fail(
            "connect-url",
            f"no user with id {user_id!r} in the users table; the host application "
            "creates the rows, then ask again",
        )
    print(links.connect_url(user_id, current.settings))
    return 0


def disconnect(user_id: str) -> int:
    """Revoke a user's SID connection and clear it, or say why nothing changed."""
    try:
        done = connection.disconnect(runtime.get(), user_id)
    except UnknownUser:
        return _fail("disconnect", f"no user with id {user_id!r} in the users table")
    except ProviderError as exc:
        return _fail(
            "disconnect",
            f"SID did not confirm the revocation ({exc}); nothing was changed, run "
            "the command again later",
        )

    if done.revoked:
        print(f"user {user_id} disconnected; the refresh token was revoked at SID")
    else:
        print(f"user {user_id} marked disconnected; it held no SID tokens")
    return 0
