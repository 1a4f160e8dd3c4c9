"""How many chained refreshes per second the SID simulator serves.

    uv run python bench/simulator_throughput.py [--seconds N] [--concurrency N]

The simulator must never be what limits a load test of the product, so this measures
it alone. The script starts the simulator as a real subprocess on a free loopback
port (rotation on, rate limit and faults off), connects ``--concurrency`` SID users
through the consent page and a PKCE code exchange, and then, for ``--seconds``, has
one coroutine per user refresh in a chain: each request presents the refresh token
the previous answer returned, exactly as a correct refresher would. The load comes
from this process with an aiohttp client, so client and server each have a core.

For scale, the same load shape is first run against the server's trivial
``/healthz`` route; the ratio says how much of the ceiling is the refresh logic
rather than HTTP handling. Each phase also reports the CPU time the server and the
client used: a server well below 100 % means the client (or a neighbour on the
machine) was the limit, and "req/s per server core" estimates the server's ceiling
from its CPU cost per request. Afterwards the simulator's own counters must show every
refresh token presented exactly once.

The run is bounded in time (``--seconds`` per phase) and in count
(``--max-requests`` per phase), and stays on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
from machine import describe

from shared.oauth import Pkce

ROOT = Path(__file__).resolve().parent.parent
REDIRECT_URI = "http://127.0.0.1:5000/api/sid/callback"
CLIENT_ID = "bench-client"
CLIENT_SECRET = "bench-secret"  # noqa: S105 (a throwaway credential for loopback)
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')
STARTUP_TIMEOUT = 20.0
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclasses.dataclass
class Phase:
    """Latencies and failures of one timed load phase."""

    name: str
    latencies: list[float] = dataclasses.field(default_factory=list)
    errors: int = 0
    elapsed: float = 0.0
    server_cpu: float = 0.0
    client_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def percentile(self, share: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000

    @property
    def server_capacity(self) -> float:
        """Requests per second of one fully busy server core, from its CPU time."""
        return len(self.latencies) / self.server_cpu if self.server_cpu else 0.0

    def line(self) -> str:
        server = self.server_cpu / self.elapsed if self.elapsed else 0.0
        client = self.client_cpu / self.elapsed if self.elapsed else 0.0
        p50, p99 = self.percentile(0.50), self.percentile(0.99)
        return (
            f"{self.name:<8} {len(self.latencies):>6} requests "
            f"{self.rate:>5.0f} req/s  p50 {p50:5.2f} ms  p99 {p99:6.2f} ms  "
            f"errors {self.errors}  CPU server {server:4.0%} client {client:4.0%}  "
            f"(~{self.server_capacity:.0f} req/s per server core)"
        )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def resident_megabytes(pid: int) -> float:
    """The process's resident memory (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def machine() -> str:
    """nproc, CPU model, Python and aiohttp versions, for reading the numbers later."""
    return f"{describe()}, aiohttp {aiohttp.__version__}"


def start_simulator(port: int) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "SID_CLIENT_ID": CLIENT_ID,
        "SID_CLIENT_SECRET": CLIENT_SECRET,
        "SID_REDIRECT_URI": REDIRECT_URI,
    }
    command = [sys.executable, "-m", "simulator", "--port", str(port)]
    flags = ["--rate-limit", "0", "--rotation", "--log-level", "WARNING"]
    return subprocess.Popen(
        [*command, *flags], cwd=ROOT, env=env, stdout=subprocess.DEVNULL
    )


async def wait_until_healthy(session: aiohttp.ClientSession, url: str) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        try:
            async with session.get(f"{url}/healthz") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientConnectionError:
            pass
        await asyncio.sleep(0.05)
    raise SystemExit(f"the simulator did not answer {url}/healthz in time")


async def consent(
    session: aiohttp.ClientSession, url: str, user: str, challenge: str
) -> str:
    """Open the consent page and approve as ``user``; the authorization code."""
    query = urlencode(
        {
            "response_type": "code",
            "client_id": CLIENT_ID,
            "redirect_uri": REDIRECT_URI,
            "scope": "query:data offline_access",
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    async with session.get(f"{url}/api/oauth/authorize?{query}") as page:
        match = REQUEST_ID.search(await page.text())
    assert match is not None, "no consent form on the authorize page"
    decision = {"request_id": match[1], "user": user, "decision": "approve"}
    async with session.post(
        f"{url}/api/oauth/authorize/decision", data=decision, allow_redirects=False
    ) as answer:
        location = answer.headers["Location"]
    return parse_qs(urlsplit(location).query)["code"][0]


async def connect_user(session: aiohttp.ClientSession, url: str, user: str) -> str:
    """Consent and exchange a code for ``user``; the first refresh token."""
    pkce = Pkce.generate()
    verifier, challenge = pkce.verifier, pkce.challenge
    exchange = {
        "grant_type": "authorization_code",
        "code": await consent(session, url, user, challenge),
        "redirect_uri": REDIRECT_URI,
        "code_verifier": verifier,
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
    }
    async with session.post(f"{url}/oauth/token", data=exchange) as response:
        tokens: dict[str, Any] = await response.json()
    refresh_token: str = tokens["refresh_token"]
    return refresh_token


Request = Callable[[], Awaitable[bool]]


async def run_phase(
    name: str, workers: list[Request], args: argparse.Namespace
) -> Phase:
    """Run every worker's request in a loop until the time or count runs out."""
    phase = Phase(name)
    seconds, max_requests = args.seconds, args.max_requests
    deadline = time.monotonic() + seconds

    async def loop(request: Request) -> None:
        while time.monotonic() < deadline and len(phase.latencies) < max_requests:
            started = time.perf_counter()
            ok = await request()
            if not ok:
                phase.errors += 1
                return
            phase.latencies.append(time.perf_counter() - started)

    started, server, client = (
        time.monotonic(),
        cpu_seconds(args.server_pid),
        cpu_seconds(os.getpid()),
    )
    await asyncio.gather(*(loop(worker) for worker in workers))
    phase.elapsed = time.monotonic() - started
    phase.server_cpu = cpu_seconds(args.server_pid) - server
    phase.client_cpu = cpu_seconds(os.getpid()) - client
    return phase


def health_worker(session: aiohttp.ClientSession, url: str) -> Request:
    async def request() -> bool:
        async with session.get(f"{url}/healthz") as response:
            await response.read()
            return response.status == 200

    return request


def refresh_worker(
    session: aiohttp.ClientSession, url: str, refresh_token: str
) -> Request:
    """A chain: every request sends the refresh token the last answer returned."""
    current = refresh_token
    credentials = f"&client_id={CLIENT_ID}&client_secret={CLIENT_SECRET}"

    async def request() -> bool:
        nonlocal current
        body = f"grant_type=refresh_token&refresh_token={current}{credentials}"
        async with session.post(
            f"{url}/oauth/token", data=body.encode(), headers=FORM
        ) as response:
            if response.status != 200:
                return False
            current = (await response.json())["refresh_token"]
            return True

    return request


async def simulator_stats(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    async with session.get(f"{url}/admin/stats") as response:
        stats: dict[str, Any] = await response.json()
        return stats


async def measure(
    url: str, args: argparse.Namespace
) -> tuple[Phase, Phase, dict[str, Any]]:
    connector = aiohttp.TCPConnector(limit=args.concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        await wait_until_healthy(session, url)
        users = [f"bench-{n}" for n in range(args.concurrency)]
        tokens = await asyncio.gather(*(connect_user(session, url, u) for u in users))
        health = await run_phase(
            "healthz",
            [health_worker(session, url) for _ in users],
            args,
        )
        refresh = await run_phase(
            "refresh",
            [refresh_worker(session, url, token) for token in tokens],
            args,
        )
        stats = await simulator_stats(session, url)
        stats["resident_megabytes"] = resident_megabytes(args.server_pid)
        return health, refresh, stats


def report(health: Phase, refresh: Phase, stats: dict[str, Any]) -> None:
    uses = stats["refresh_token_uses"]
    print(f"machine    {machine()}")
    print(health.line())
    print(refresh.line())
    print(f"ratio      refresh / healthz = {refresh.rate / max(health.rate, 1e-9):.2f}")
    print(
        f"simulator  refreshes ok {stats['refreshes']['ok']}, "
        f"reuse detections {stats['reuse_detections']}, "
        f"max uses of one refresh token {uses['max']}, "
        f"resident memory {stats['resident_megabytes']:.0f} MB"
    )


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="per phase")
    parser.add_argument("--concurrency", type=int, default=32, help="chains at once")
    parser.add_argument(
        "--max-requests", type=int, default=200_000, help="per phase, at most"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    port = free_port()
    simulator = start_simulator(port)
    args.server_pid = simulator.pid
    try:
        health, refresh, stats = asyncio.run(measure(f"http://127.0.0.1:{port}", args))
    finally:
        simulator.send_signal(signal.SIGTERM)
        simulator.wait(timeout=15)
    report(health, refresh, stats)
    clean = refresh.errors == 0 and stats["refresh_token_uses"]["max"] <= 1
    return 0 if clean else 1


if __name__ == "__main__":
    raise SystemExit(main())
