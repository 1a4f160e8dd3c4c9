"""The admin API, the counters, and the simulator's command line."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
import requests

from tests.plugins.simulator import Simulator, query_params
from tests.support import ROOT

StartSimulator = Callable[..., Simulator]


def test_stats_report_every_counter_from_zero(simulator: Simulator) -> None:
    """A fresh simulator reports all counters, all zero."""
    stats = simulator.stats()

    for name in (
        "token_requests",
        "codes_issued",
        "codes_exchanged",
        "code_reuse",
        "reuse_detections",
        "families_revoked",
        "rate_limited",
    ):
        assert stats[name] == 0, name
    assert stats["refreshes"]["ok"] == 0
    assert stats["faults_injected"]["timeout"] == 0
    assert stats["revokes"]["refresh_token"] == 0
    assert stats["queries"]["ok"] == 0
    assert stats["refresh_token_uses"] == {"tokens": 0, "max": 0, "histogram": {}}


def test_stats_count_what_the_provider_saw(simulator: Simulator) -> None:
    """Codes, exchanges, refreshes and token requests are all counted."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    simulator.refresh(refresh_token)
    simulator.refresh(refresh_token)

    stats = simulator.stats()

    assert stats["codes_issued"] == 1
    assert stats["codes_exchanged"] == 1
    assert stats["code_exchanges"]["ok"] == 1
    assert stats["token_requests"] == 3
    assert stats["refreshes"]["ok"] == 1
    assert stats["refreshes"]["invalid_grant"] == 1
    assert stats["reuse_detections"] == 1
    assert stats["refresh_token_uses"] == {
        "tokens": 1,
        "max": 2,
        "histogram": {"2": 1},
    }


def test_resetting_stats_keeps_the_tokens(simulator: Simulator) -> None:
    """Counters go back to zero while issued tokens stay valid."""
    refresh_token = simulator.issue_tokens()["refresh_token"]

    simulator.reset_stats()

    assert simulator.stats()["codes_issued"] == 0
    assert simulator.refresh(refresh_token).status_code == 200


def test_a_reset_forgets_tokens_and_restores_start_up_settings(
    simulator: Simulator,
) -> None:
    """After POST /admin/reset nothing issued before works and settings are fresh."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    simulator.configure(access_token_ttl=5, rotation=False)
    simulator.set_faults(latency_ms=10)

    simulator.reset()

    assert simulator.refresh(refresh_token).status_code == 403
    config = requests.get(f"{simulator.url}/admin/config", timeout=5).json()
    assert (config["access_token_ttl"], config["rotation"]) == (86400, True)
    faults = requests.get(f"{simulator.url}/admin/faults", timeout=5).json()
    assert faults["latency_ms"] == 0
    assert simulator.stats()["token_requests"] == 1


def test_set_faults_replaces_and_patch_merges(simulator: Simulator) -> None:
    """PUT starts from the defaults; PATCH changes only what it names."""
    simulator.set_faults(latency_ms=10)
    replaced = simulator.set_faults(jitter_ms=5)
    merged = requests.patch(
        f"{simulator.url}/admin/faults", json={"latency_ms": 7}, timeout=5
    ).json()

    assert (replaced["latency_ms"], replaced["jitter_ms"]) == (0, 5)
    assert (merged["latency_ms"], merged["jitter_ms"]) == (7, 5)


def test_invalid_config_is_refused_with_the_reason(simulator: Simulator) -> None:
    """Unknown names, wrong types and impossible values get a 400."""
    for body, reason in (
        ({"rotaton": False}, "unknown setting"),
        ({"leeway": "5"}, "does not fit"),
        ({"access_token_ttl": 0}, "at least 1"),
        ({"refresh_error": "nope"}, "must be one of"),
    ):
        response = requests.put(f"{simulator.url}/admin/config", json=body, timeout=5)
        assert response.status_code == 400, body
        assert reason in response.json()["error_description"]


def test_a_user_view_shows_grants_and_families_without_token_values(
    simulator: Simulator,
) -> None:
    """The admin view describes state, and no token value appears in it."""
    tokens = simulator.issue_tokens("carol")

    response = requests.get(f"{simulator.url}/admin/users/carol", timeout=5)

    grant = response.json()["grants"][0]
    assert grant["revoked"] is False
    assert grant["families"][0]["usable_tokens"] == 1
    assert grant["families"][0]["rotating"] is True
    assert tokens["refresh_token"] not in response.text
    assert tokens["access_token"] not in response.text


def test_the_start_up_line_names_the_url_but_never_the_secret(
    start_simulator: StartSimulator,
) -> None:
    """One line announces the URL and client; the secret stays out of the output."""
    simulator = start_simulator(client_secret="s3cret-value-for-test")

    simulator.issue_tokens()
    status = simulator.stop()

    output = simulator.output()
    assert status == 0
    assert f"listening on {simulator.url}" in output
    assert simulator.client_id in output
    assert "s3cret-value-for-test" not in output


def test_the_registered_client_comes_from_the_sid_variables(
    start_simulator: StartSimulator,
) -> None:
    """SID_CLIENT_ID, SID_CLIENT_SECRET and SID_REDIRECT_URI define the client."""
    simulator = start_simulator(
        client_id="web-tests",
        client_secret="web-tests-secret",
        redirect_uri="http://127.0.0.1:5999/api/sid/callback",
        extra_redirect_uris=("http://localhost:5999/api/sid/callback",),
    )
    extra = simulator.authorization_url(
        redirect_uri="http://localhost:5999/api/sid/callback"
    )

    assert simulator.issue_tokens()["access_token"]
    assert query_params(simulator.approve(extra))["code"]


def test_flags_set_the_tenant_and_environment_variables_fill_in(
    start_simulator: StartSimulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--no-rotation`` and SIMULATOR_ACCESS_TOKEN_TTL both take effect."""
    monkeypatch.setenv("SIMULATOR_ACCESS_TOKEN_TTL", "42")
    simulator = start_simulator(rotation=False)

    tokens = simulator.issue_tokens()
    refreshed = simulator.refresh(tokens["refresh_token"]).json()

    assert tokens["expires_in"] == 42
    assert "refresh_token" not in refreshed


def test_help_lists_the_flags_the_interface_promises() -> None:
    """``--help`` documents the flags named in INTERFACE.md and the rest."""
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--help"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=True,
    )

    for flag in (
        "--port",
        "--access-token-ttl",
        "--rotation, --no-rotation",
        "--leeway",
        "--rate-limit",
        "--refresh-idle-lifetime",
        "--error-rate",
        "--seed",
    ):
        assert flag in result.stdout


def test_a_busy_port_is_reported_plainly(simulator: Simulator) -> None:
    """Starting on a port in use exits 1 with a message that says what to do."""
    result = subprocess.run(
        [sys.executable, "-m", "simulator", "--port", str(simulator.port)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=30,
        check=False,
    )

    assert result.returncode == 1
    assert "pass a free --port" in result.stderr
