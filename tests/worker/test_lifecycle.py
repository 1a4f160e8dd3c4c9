"""A worker's life as operators see it: metrics, SIGTERM, other brokers, the CLI."""

from __future__ import annotations

import shutil
import socket
import subprocess
import uuid
from collections.abc import Callable, Iterator

import pytest
import requests

from shared.models import Status
from shared.runtime import Runtime
from tests.plugins.simulator import Simulator
from tests.support import free_port, run_sidtokens, wait_for
from tests.worker.fleet import Fleet, log_of
from tests.worker.population import connect, make_due, rows

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/{vhost}"


@pytest.mark.slow
def test_sigterm_lets_refreshes_in_flight_finish_and_be_stored(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
) -> None:
    """Every token SID rotated before the shutdown is in the database afterwards.

    Claims the worker had not started yet are handed back, due at once, so no
    user waits out a lease.
    """
    processes = fleet(make_env(simulator))
    worker = processes.worker("w1")
    user_ids = connect(simulator, runtime, 16)
    before = {u: rows(runtime)[u].sid_refreshed_at for u in user_ids}
    simulator.set_faults(latency_ms=1500)
    simulator.reset_stats()
    make_due(runtime)
    beat = processes.beat("beat")
    wait_for(
        lambda: simulator.stats()["faults_injected"]["latency"] >= 8,
        timeout=30,
        message="eight refreshes to be waiting on SID",
    )
    beat.stop()

    status = worker.stop(timeout=20)

    state = rows(runtime)
    stored = [u for u in user_ids if state[u].sid_refreshed_at != before[u]]
    assert status == 0, log_of(worker)
    assert len(stored) >= 8
    assert simulator.stats()["refreshes"]["ok"] == len(stored)
    assert all(state[u].sid_lease_until is None for u in user_ids)
    assert all(state[u].sid_status == Status.CONNECTED for u in user_ids)
    assert "handed back" in log_of(worker)


@pytest.mark.slow
def test_the_worker_serves_its_metrics_when_a_port_is_set(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
) -> None:
    """SIDTOKENS_WORKER_METRICS_PORT exposes the refresh and scan series."""
    port = free_port()
    processes = fleet(make_env(simulator, SIDTOKENS_WORKER_METRICS_PORT=str(port)))
    processes.worker("w1")
    processes.beat("beat")
    connect(simulator, runtime, 3)
    make_due(runtime)

    def refreshed_metrics() -> str | None:
        text = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text
        return text if 'sidtokens_refreshes_total{outcome="ok"} 3.0' in text else None

    text = wait_for(refreshed_metrics, timeout=30, message="three refreshes counted")

    assert "sidtokens_scan_duration_seconds_count" in text
    assert "sidtokens_due_backlog" in text
    assert (
        'sidtokens_token_requests_total{grant_type="refresh_token",status="2xx"}'
        in text
    )


def _rabbitmq_is_running() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5672), timeout=1):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(["rabbitmqctl", *args], check=True, capture_output=True)


@pytest.fixture
def rabbitmq_url() -> Iterator[str]:
    """A private virtual host on the local RabbitMQ, removed afterwards."""
    if not _rabbitmq_is_running():
        pytest.skip("RabbitMQ is not listening on 127.0.0.1:5672")
    if shutil.which("rabbitmqctl") is None:
        yield RABBITMQ_URL.format(vhost="")
        return
    vhost = f"sidtokens-test-{uuid.uuid4().hex[:8]}"
    _rabbitmqctl("add_vhost", vhost)
    _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    yield RABBITMQ_URL.format(vhost=vhost)
    _rabbitmqctl("delete_vhost", vhost)


@pytest.mark.slow
def test_rabbitmq_works_as_the_broker(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
    fleet: Callable[[dict[str, str]], Fleet],
    rabbitmq_url: str,
) -> None:
    """With CELERY_BROKER_URL on RabbitMQ, beat and workers refresh as with Redis."""
    processes = fleet(make_env(simulator, CELERY_BROKER_URL=rabbitmq_url))
    processes.worker("w1")
    processes.beat("beat")
    user_ids = connect(simulator, runtime, 10)
    before = {u: rows(runtime)[u].sid_refreshed_at for u in user_ids}
    make_due(runtime)

    wait_for(
        lambda: all(rows(runtime)[u].sid_refreshed_at != before[u] for u in user_ids),
        timeout=30,
        message="every user to be refreshed through RabbitMQ",
    )

    assert "amqp://" in log_of(processes.children["w1"])
    assert simulator.stats()["refresh_token_uses"]["max"] == 1


def test_sidtokens_refresh_refreshes_one_user_and_prints_no_token(
    simulator: Simulator,
    runtime: Runtime,
    make_env: Callable[..., dict[str, str]],
) -> None:
    """The operator command refreshes through the claim path and says until when."""
    [user_id] = connect(simulator, runtime, 1)
    simulator.reset_stats()

    done = run_sidtokens("refresh", user_id, env=make_env(simulator))

    assert done.returncode == 0, done.stderr
    assert f"user {user_id}: refreshed at SID" in done.stdout
    assert "expires at" in done.stdout
    assert "sim_" not in done.stdout + done.stderr
    assert simulator.stats()["refreshes"]["ok"] == 1


def test_sidtokens_refresh_names_an_unknown_user(
    simulator: Simulator, make_env: Callable[..., dict[str, str]]
) -> None:
    """An id with no row is one clear line and exit status 2."""
    done = run_sidtokens("refresh", "31337", env=make_env(simulator))

    assert done.returncode == 2
    assert "no user with id '31337'" in done.stderr
