"""``sidtokens simulator`` / ``python -m simulator``: run the SID simulator.

Every flag also reads ``SIMULATOR_<NAME>`` from the environment (``--access-token-ttl``
reads ``SIMULATOR_ACCESS_TOKEN_TTL``); a flag on the command line wins. The one client
is registered from ``SID_CLIENT_ID``, ``SID_CLIENT_SECRET`` and ``SID_REDIRECT_URI``,
the same variables the product reads, with development defaults when unset.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from shared.settings import (
    DEVELOPMENT_CLIENT_ID,
    DEVELOPMENT_CLIENT_SECRET,
    DEVELOPMENT_REDIRECT_URI,
)
from simulator.app import create_app
from simulator.authorization import SID_AUDIENCE
from simulator.faults import ENDPOINTS, ERROR_STATUSES, FaultSettings
from simulator.grants import Client
from simulator.provider import (
    ACCESS_TOKEN_REVOCATIONS,
    CLIENT_AUTH_ERRORS,
    CLIENT_AUTH_METHODS,
    REFRESH_ERRORS,
    ProviderConfig,
)
from simulator.tenant import Tenant, TenantSettings

logger = logging.getLogger("sidtokens.simulator")

ENV_PREFIX = "SIMULATOR_"
TRUE = frozenset({"1", "true", "yes", "on"})
FALSE = frozenset({"0", "false", "no", "off"})
# Requests still running at shutdown (held by a timeout fault) get this long.
SHUTDOWN_GRACE_SECONDS = 1.0


class _Options:
    """Adds flags whose defaults come from ``SIMULATOR_*`` variables when set."""

    def __init__(self, group: Any, env: Mapping[str, str]) -> None:
        self.group = group
        self.env = env

    def _env_name(self, flag: str) -> str:
        return ENV_PREFIX + flag.removeprefix("--").replace("-", "_").upper()

    def value(self, flag: str, help: str, default: Any, **kwargs: Any) -> None:
        name = self._env_name(flag)
        # A string default goes through ``type`` too, so a bad variable is reported
        # like a bad flag.
        default = self.env.get(name, default)
        shown = "" if default is None else "; default %(default)s"
        self.group.add_argument(
            flag, default=default, help=f"{help}{shown} [env {name}]", **kwargs
        )

    def switch(self, flag: str, help: str, default: bool) -> None:
        name = self._env_name(flag)
        raw = self.env.get(name, "").strip().lower()
        if raw and raw not in TRUE | FALSE:
            raise ValueError(f"{name}={raw!r} is not a boolean; use true or false")
        value = raw in TRUE if raw else default
        self.group.add_argument(
            flag,
            action=argparse.BooleanOptionalAction,
            default=value,
            help=f"{help}; default {'on' if value else 'off'} [env {name}]",
        )


def _add_server_options(options: _Options) -> None:
    options.value("--host", "interface to listen on", "127.0.0.1")
    options.value("--port", "port to listen on (0: any free port)", 8700, type=int)
    options.value("--seed", "seed for fault randomness", None, type=int)
    options.value(
        "--log-level",
        "log level",
        "INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        type=str.upper,
    )


def _add_token_options(options: _Options) -> None:
    options.value("--access-token-ttl", "access token lifetime, s", 86_400, type=int)
    options.switch("--rotation", "rotate refresh tokens on every exchange", True)
    options.value("--leeway", "reuse interval for rotated tokens, s", 0, type=int)
    options.value(
        "--refresh-absolute-lifetime",
        "refresh token family lifetime from issue, s (0: infinite)",
        2_592_000,
        type=int,
    )
    options.value(
        "--refresh-idle-lifetime",
        "refresh token inactivity lifetime, s (0: infinite)",
        2_592_000,
        type=int,
    )
    options.value("--code-ttl", "authorization code lifetime, s", 600, type=int)
    options.value(
        "--refresh-token-cap",
        "live refresh token families per user and client (0: no cap)",
        200,
        type=int,
    )


def _add_policy_options(options: _Options) -> None:
    options.switch("--reuse-revokes-grant", "reuse detection revokes the grant", True)
    options.switch(
        "--leeway-keeps-child", "a reuse within leeway keeps the earlier child", True
    )
    options.switch(
        "--revocation-deletes-grant",
        "revoking a refresh token revokes its grant",
        False,
    )
    options.value(
        "--access-token-revocation",
        "what revoking an access token does",
        "ignore",
        choices=ACCESS_TOKEN_REVOCATIONS,
    )
    options.switch(
        "--revoked-grant-kills-access-tokens",
        "access tokens of revoked grants stop working before they expire",
        False,
    )
    options.value(
        "--client-auth-methods",
        "accepted client authentication",
        "any",
        choices=CLIENT_AUTH_METHODS,
    )
    options.value(
        "--client-auth-error",
        "error code for a bad client",
        "access_denied",
        choices=CLIENT_AUTH_ERRORS,
    )
    options.value(
        "--refresh-error",
        "error code for a refused refresh token",
        "invalid_grant",
        choices=REFRESH_ERRORS,
    )


def _add_rate_limit_options(options: _Options) -> None:
    options.value(
        "--rate-limit",
        "token and revoke requests per second (0: no limit)",
        30.0,
        type=float,
    )
    options.value(
        "--rate-limit-burst", "bucket size (default: the rate)", None, type=int
    )
    options.value(
        "--rate-limit-status",
        "status when limited (500 reproduces a quirk)",
        429,
        type=int,
        choices=(429, 500),
    )
    options.switch("--retry-after", "send Retry-After when limited", False)


def _add_fault_options(options: _Options) -> None:
    options.value("--latency-ms", "added latency, ms", 0, type=int)
    options.value("--jitter-ms", "random extra latency, up to ms", 0, type=int)
    options.value("--error-rate", "share of 5xx JSON errors", 0.0, type=float)
    options.value(
        "--error-status", "status of those", 503, type=int, choices=ERROR_STATUSES
    )
    options.value("--timeout-rate", "share of requests never answered", 0.0, type=float)
    options.value("--timeout-hold", "how long those are held, s", 30.0, type=float)
    options.value("--malformed-rate", "share of invalid JSON bodies", 0.0, type=float)
    options.value("--truncated-rate", "share of cut-off JSON bodies", 0.0, type=float)
    options.value("--html-error-rate", "share of HTML error pages", 0.0, type=float)
    options.value(
        "--html-error-status",
        "status of those",
        502,
        type=int,
        choices=ERROR_STATUSES,
    )
    options.value(
        "--drop-response-rate",
        "share processed but never answered",
        0.0,
        type=float,
    )
    options.value(
        "--drop-hold", "how long those are held before hanging up, s", 0.0, type=float
    )
    options.value(
        "--fault-endpoints",
        f"comma-separated endpoints faults apply to ({', '.join(ENDPOINTS)})",
        "token",
    )


def build_parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    """The command line, with defaults read from ``env``."""
    parser = argparse.ArgumentParser(
        prog="sidtokens simulator",
        description="Run a local stand-in for SID's OAuth provider and query API.",
        epilog="The client comes from SID_CLIENT_ID, SID_CLIENT_SECRET and "
        "SID_REDIRECT_URI. The admin API is served under /admin/.",
    )
    parser.add_argument(
        "--redirect-uri",
        action="append",
        default=[],
        help="register another redirect URI (repeatable)",
    )
    parser.add_argument(
        "--audience",
        action="append",
        default=[],
        help=f"accept another audience besides {SID_AUDIENCE} (repeatable)",
    )
    _add_server_options(_Options(parser.add_argument_group("server"), env))
    _add_token_options(_Options(parser.add_argument_group("tokens"), env))
    _add_policy_options(_Options(parser.add_argument_group("tenant policy"), env))
    _add_rate_limit_options(_Options(parser.add_argument_group("rate limit"), env))
    _add_fault_options(_Options(parser.add_argument_group("faults"), env))
    return parser


def _lifetime(seconds: int) -> int | None:
    return None if seconds == 0 else seconds


def _client(args: argparse.Namespace, env: Mapping[str, str]) -> Client:
    redirect_uri = env.get("SID_REDIRECT_URI") or DEVELOPMENT_REDIRECT_URI
    return Client(
        client_id=env.get("SID_CLIENT_ID") or DEVELOPMENT_CLIENT_ID,
        client_secret=env.get("SID_CLIENT_SECRET") or DEVELOPMENT_CLIENT_SECRET,
        redirect_uris=tuple(dict.fromkeys([redirect_uri, *args.redirect_uri])),
    )


def _config(args: argparse.Namespace) -> ProviderConfig:
    return ProviderConfig(
        access_token_ttl=args.access_token_ttl,
        rotation=args.rotation,
        leeway=args.leeway,
        refresh_absolute_lifetime=_lifetime(args.refresh_absolute_lifetime),
        refresh_idle_lifetime=_lifetime(args.refresh_idle_lifetime),
        code_ttl=args.code_ttl,
        refresh_token_cap=args.refresh_token_cap,
        reuse_revokes_grant=args.reuse_revokes_grant,
        leeway_keeps_child=args.leeway_keeps_child,
        revocation_deletes_grant=args.revocation_deletes_grant,
        access_token_revocation=args.access_token_revocation,
        revoked_grant_kills_access_tokens=args.revoked_grant_kills_access_tokens,
        client_auth_methods=args.client_auth_methods,
        client_auth_error=args.client_auth_error,
        refresh_error=args.refresh_error,
    )


def _faults(args: argparse.Namespace) -> FaultSettings:
    return FaultSettings(
        latency_ms=args.latency_ms,
        jitter_ms=args.jitter_ms,
        error_rate=args.error_rate,
        error_status=args.error_status,
        timeout_rate=args.timeout_rate,
        timeout_hold_seconds=args.timeout_hold,
        malformed_rate=args.malformed_rate,
        truncated_rate=args.truncated_rate,
        html_error_rate=args.html_error_rate,
        html_error_status=args.html_error_status,
        drop_response_rate=args.drop_response_rate,
        drop_hold_seconds=args.drop_hold,
        apply_to=tuple(e.strip() for e in args.fault_endpoints.split(",") if e.strip()),
        rate_limit_per_second=args.rate_limit,
        rate_limit_burst=args.rate_limit_burst,
        rate_limit_status=args.rate_limit_status,
        retry_after=args.retry_after,
    )


def tenant_settings(args: argparse.Namespace, env: Mapping[str, str]) -> TenantSettings:
    """Start-up settings from parsed flags; ``ValueError`` names a bad value."""
    return TenantSettings(
        client=_client(args, env),
        config=_config(args),
        faults=_faults(args),
        audiences=frozenset({SID_AUDIENCE, *args.audience}),
        seed=args.seed,
    )


async def _until_stopped() -> None:
    stopped = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    await stopped.wait()


def _announce(runner: web.AppRunner, client: Client) -> None:
    host, port = runner.addresses[0][:2]
    url = f"http://{host}:{port}"
    print(
        f"SID simulator listening on {url} (client_id {client.client_id}, redirect "
        f"URIs {' '.join(client.redirect_uris)}; admin API at {url}/admin/)",
        flush=True,
    )


async def serve(tenant: Tenant, host: str, port: int) -> int:
    """Serve until SIGINT or SIGTERM; 1 when the port cannot be bound."""
    runner = web.AppRunner(
        create_app(tenant),
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=SHUTDOWN_GRACE_SECONDS,
    )
    await runner.setup()
    try:
        try:
            await web.TCPSite(runner, host, port, backlog=1024).start()
        except OSError as error:
            print(
                f"sidtokens simulator: cannot listen on {host}:{port} "
                f"({error.strerror}); pass a free --port",
                file=sys.stderr,
            )
            return 1
        _announce(runner, tenant.settings.client)
        await _until_stopped()
    finally:
        await runner.cleanup()
    logger.info("SID simulator stopped")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator; the exit status is 0 after a clean SIGINT or SIGTERM."""
    env = os.environ
    try:
        args = build_parser(env).parse_args(argv)
        settings = tenant_settings(args, env)
    except ValueError as error:
        print(f"sidtokens simulator: {error}", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return asyncio.run(serve(Tenant(settings), args.host, args.port))
