"""A local stand-in for SID's OAuth provider (an Auth0 tenant) and its query API.

The whole product is tested against it. It follows the behavioural spec in
``shared/reference/provider-behaviour.md``: the authorize front door with consent,
``/oauth/token`` with code and refresh grants (rotation, reuse detection, leeway,
lifetimes), RFC 7009 revocation, the query endpoint, Auth0's rate limit, and injected
faults, all controllable at run time through ``/admin/``.

Modules: :mod:`~simulator.provider` holds the rules as plain Python over the records
in :mod:`~simulator.grants`; :mod:`~simulator.app`, :mod:`~simulator.wire` and
:mod:`~simulator.admin` are the HTTP side; :mod:`~simulator.command` is the command
line (``sidtokens simulator``, ``python -m simulator``).
"""

from __future__ import annotations

from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator from the command line; see ``--help``."""
    from simulator.command import main as run

    return run(argv)


__all__ = ["main"]
