"""``sidtokens``: the operator's command line.

Each subcommand is a small function that parses nothing itself: argparse hands it
the parsed arguments, it does one thing through the same code the web tier and
the workers use, and returns the process exit status. Errors of our own
(:class:`~shared.errors.SidTokensError`) are printed as one clear line with exit
status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from shared.errors import SidTokensError, StorageError

Command = Callable[[argparse.Namespace], int]


def _migrate(args: argparse.Namespace) -> int:
    from shared import settings
    from shared.database import migrate

    url = settings.get().database_url
    migrate(url)
    print("schema is up to date")
    return 0


def _connect_url(args: argparse.Namespace) -> int:
    from web import commands

    return commands.connect_url(args.user_id)


def _disconnect(args: argparse.Namespace) -> int:
    from web import commands

    return commands.disconnect(args.user_id)


def _status(args: argparse.Namespace) -> int:
    import json

    from shared import runtime, status
    from worker.rate_limit import rate_limit_for

    current = runtime.get()
    with current.sessions() as session:
        snapshot = status.take(session)
    paused = rate_limit_for(current.cache.client, current.settings).paused_for()
    provider = status.provider_health(current.settings.token_url, paused)
    if args.json:
        print(json.dumps({**snapshot.as_json(), "provider": provider}, indent=2))
    else:
        print(status.render_table(snapshot, provider))
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from shared import doctor

    findings = doctor.diagnose()
    print(doctor.render(findings))
    return 0 if all(finding.ok for finding in findings) else 1


def _encrypt(args: argparse.Namespace) -> int:
    from shared import rekey, runtime

    current = runtime.get()
    report = rekey.rekey(current.sessions, current.cipher, rekey.progress_bar())
    print(
        f"{report.rewritten} of {report.examined} rows rewritten under the current "
        f"key; {report.raced} changed meanwhile and were left to their writer"
    )
    return 0


def _refresh(args: argparse.Namespace) -> int:
    from worker import commands

    return commands.refresh(args.user_id, wait=args.wait)


def _rewarm(args: argparse.Namespace) -> int:
    from worker import commands

    return commands.rewarm()


def _run(args: argparse.Namespace) -> int:
    from shared import stack

    return stack.run()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sidtokens", description="Keep SID access tokens warm in Redis."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    migrate = commands.add_parser(
        "migrate",
        help="create the database if missing, then create or upgrade the schema",
    )
    migrate.set_defaults(handler=_migrate)

    connect_url = commands.add_parser(
        "connect-url", help="print a signed, expiring link that connects a user to SID"
    )
    connect_url.add_argument("user_id", metavar="USER_ID")
    connect_url.set_defaults(handler=_connect_url)

    disconnect = commands.add_parser(
        "disconnect",
        help="revoke a user's refresh token at SID, clear the columns and the key",
    )
    disconnect.add_argument("user_id", metavar="USER_ID")
    disconnect.set_defaults(handler=_disconnect)

    status = commands.add_parser(
        "status", help="users by state, due work, failures, last refresh, provider"
    )
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=_status)

    doctor = commands.add_parser(
        "doctor", help="check configuration, database, Redis, broker and SID"
    )
    doctor.set_defaults(handler=_doctor)

    encrypt = commands.add_parser(
        "encrypt",
        help="encrypt plaintext tokens and re-encrypt old ones under the first key; "
        "safe to interrupt and rerun",
    )
    encrypt.set_defaults(handler=_encrypt)

    refresh = commands.add_parser(
        "refresh", help="refresh one user now, through the workers' single-flight path"
    )
    refresh.add_argument("user_id", metavar="USER_ID")
    refresh.add_argument(
        "--wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="how long to wait for a refresh already in flight (default 30)",
    )
    refresh.set_defaults(handler=_refresh)

    rewarm = commands.add_parser(
        "rewarm", help="republish every still-valid token to Redis without calling SID"
    )
    rewarm.set_defaults(handler=_rewarm)

    run = commands.add_parser(
        "run", help="run the whole stack locally (what `make run` does)"
    )
    run.set_defaults(handler=_run)

    simulator = commands.add_parser(
        "simulator",
        help="run the SID simulator (see `sidtokens simulator --help`)",
        add_help=False,
    )
    simulator.set_defaults(handler=None)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # The simulator owns its own flags; hand it everything after its name.
    if argv[:1] == ["simulator"]:
        from simulator import main as simulator_main

        return simulator_main(argv[1:])

    args = _parser().parse_args(argv)
    handler: Command = args.handler
    try:
        return _translating_storage_errors(handler, args)
    except SidTokensError as exc:
        print(f"sidtokens {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


def _translating_storage_errors(handler: Command, args: argparse.Namespace) -> int:
    """Run ``handler``, turning an unreachable database or Redis into StorageError."""
    import redis

    from shared.database import unreachable_as_storage_error

    try:
        with unreachable_as_storage_error():
            return handler(args)
    except redis.ConnectionError as exc:
        raise StorageError(
            f"Redis did not answer ({exc}); check that it is running and that "
            "REDIS_URL is right"
        ) from exc


if __name__ == "__main__":
    raise SystemExit(main())
