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

from shared.errors import SidTokensError

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
        return handler(args)
    except SidTokensError as exc:
        print(f"sidtokens {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
