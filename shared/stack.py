"""``make run``: the whole stack on one machine, under one supervisor.

On first run it writes a git-ignored ``.env`` with freshly generated development
secrets, pointing at the simulator unless real SID credentials are already in the
environment or in ``.env``. It then migrates the database and starts the
``Procfile`` processes with honcho: the simulator (only when it is the provider),
the web tier, one worker and beat. Ctrl-C stops all of them.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
ENV_FILE = ROOT / ".env"
PROCFILE = ROOT / "Procfile"
WEB_PORT = 5000
SIMULATOR_PORT = 8700
SIMULATOR = f"http://127.0.0.1:{SIMULATOR_PORT}"


def development_env() -> dict[str, str]:
    """A full development configuration: new secrets, the simulator as SID."""
    return {
        "SIDTOKENS_ENV": "development",
        "SIDTOKENS_SECRET_KEY": secrets.token_urlsafe(48),
        "SIDTOKENS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "SIDTOKENS_STATUS_TOKEN": secrets.token_urlsafe(24),
        "SID_CLIENT_ID": "sidtokens-dev-client",
        "SID_CLIENT_SECRET": secrets.token_urlsafe(32),
        "SID_REDIRECT_URI": f"http://127.0.0.1:{WEB_PORT}/api/sid/callback",
        "SID_AUTHORIZE_URL": f"{SIMULATOR}/api/oauth/authorize",
        "SID_TOKEN_URL": f"{SIMULATOR}/oauth/token",
        "SID_REVOKE_URL": f"{SIMULATOR}/oauth/revoke",
        "SID_QUERY_URL": f"{SIMULATOR}/v1/users/me/query",
        "SIMULATOR_PORT": str(SIMULATOR_PORT),
        # Short-lived demo tokens, so refreshes can be watched within minutes.
        "SIMULATOR_ACCESS_TOKEN_TTL": "300",
        "SIDTOKENS_REFRESH_AHEAD_SECONDS": "120",
        "SIDTOKENS_CACHE_MARGIN_SECONDS": "30",
        "SIDTOKENS_SCAN_INTERVAL_SECONDS": "5",
        "SIDTOKENS_REWARM_INTERVAL_SECONDS": "30",
        "SIDTOKENS_WORKER_METRICS_PORT": "9808",
        # Not PORT: honcho gives every process a PORT of its own.
        "SIDTOKENS_WEB_BIND": f"127.0.0.1:{WEB_PORT}",
    }


def read_env_file(path: Path) -> dict[str, str]:
    """Parse ``NAME=value`` lines; blank lines and ``#`` comments are skipped."""
    values: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        name, value = line.split("=", 1)
        values[name.strip()] = value.strip().strip("'\"")
    return values


def write_env_file(path: Path, values: Mapping[str, str]) -> None:
    lines = ["# Development settings written by `make run`; never commit this file."]
    lines += [f"{name}={value}" for name, value in values.items()]
    path.write_text("\n".join(lines) + "\n")
    path.chmod(0o600)


def uses_simulator(env: Mapping[str, str]) -> bool:
    """Whether SID's token URL is the local simulator's port."""
    port = env.get("SIMULATOR_PORT", str(SIMULATOR_PORT))
    return urlsplit(env.get("SID_TOKEN_URL", "")).netloc in {
        f"127.0.0.1:{port}",
        f"localhost:{port}",
    }


def processes(env: Mapping[str, str]) -> list[str]:
    """The Procfile entries to start: the simulator only when it is the provider."""
    names = ["web", "worker", "beat"]
    return ["simulator", *names] if uses_simulator(env) else names


def _prepare_env() -> dict[str, str]:
    if not ENV_FILE.exists():
        real_sid = {"SID_CLIENT_ID", "SID_CLIENT_SECRET"} <= os.environ.keys()
        values = development_env()
        if real_sid:
            for name in list(values):
                if name.startswith(("SID_", "SIMULATOR_")):
                    del values[name]
        write_env_file(ENV_FILE, values)
        print(f"wrote development settings to {ENV_FILE.name}")
    return {**read_env_file(ENV_FILE), **os.environ}


def run() -> int:
    """Migrate, then supervise every process until Ctrl-C."""
    env = _prepare_env()
    bin_dir = Path(sys.executable).parent
    sidtokens = shutil.which("sidtokens", path=str(bin_dir)) or "sidtokens"
    subprocess.run([sidtokens, "migrate"], env=env, check=True)  # noqa: S603
    origin = env.get("SIDTOKENS_PUBLIC_URL") or f"http://127.0.0.1:{WEB_PORT}"
    print(
        f"\n  sid-tokens is starting: open {origin}/\n"
        f"  operator status page: {origin}/status "
        "(token: SIDTOKENS_STATUS_TOKEN in .env)\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    honcho = shutil.which("honcho", path=str(bin_dir)) or "honcho"
    command = [
        honcho,
        "-f",
        str(PROCFILE),
        "-e",
        str(ENV_FILE),
        "start",
        *processes(env),
    ]
    try:
        return subprocess.call(command, env=env, cwd=ROOT)  # noqa: S603
    except KeyboardInterrupt:
        return 0
