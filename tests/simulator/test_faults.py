"""Injected faults and the rate limit: what a refresher must survive."""

from __future__ import annotations

import json
import time

import pytest
import requests

from tests.plugins.simulator import Simulator
from tests.support import wait_for


def _refresh_body(simulator: Simulator, refresh_token: str) -> dict[str, str]:
    return {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        **simulator.client_auth(),
    }


def test_latency_delays_every_token_answer(simulator: Simulator) -> None:
    """``latency_ms`` is added to each request, measurably."""
    simulator.set_faults(latency_ms=300)

    started = time.monotonic()
    response = simulator.refresh("sim_rt_unknown")
    elapsed = time.monotonic() - started

    assert response.status_code == 403
    assert elapsed >= 0.3
    assert simulator.stats()["faults_injected"]["latency"] == 1


def test_latency_applies_only_to_the_chosen_endpoints(simulator: Simulator) -> None:
    """Faults touch /oauth/token unless ``apply_to`` names other endpoints."""
    simulator.set_faults(latency_ms=500, apply_to=["query"])

    simulator.refresh("sim_rt_unknown")

    assert simulator.stats()["faults_injected"]["latency"] == 0


def test_an_error_rate_answers_that_share_with_5xx(simulator: Simulator) -> None:
    """About ``error_rate`` of the requests get the configured 5xx status."""
    simulator.set_faults(error_rate=0.5, error_status=500)

    statuses = [simulator.refresh("sim_rt_unknown").status_code for _ in range(200)]

    assert set(statuses) == {500, 403}
    assert 60 <= statuses.count(500) <= 140
    assert simulator.stats()["faults_injected"]["error"] == statuses.count(500)


def test_an_injected_error_does_not_process_the_request(
    simulator: Simulator,
) -> None:
    """A 503 fault leaves the refresh token unspent, so a retry is safe."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    simulator.set_faults(error_rate=1.0)

    failed = simulator.refresh(refresh_token)
    simulator.clear_faults()
    retried = simulator.refresh(refresh_token)

    assert failed.status_code == 503
    assert failed.json()["error"] == "temporarily_unavailable"
    assert retried.status_code == 200
    assert simulator.stats()["refresh_token_uses"]["max"] == 1


def test_a_timeout_fault_never_answers(simulator: Simulator) -> None:
    """The request is held until the client gives up, and nothing is processed."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    simulator.set_faults(timeout_rate=1.0, timeout_hold_seconds=5)

    with pytest.raises(requests.Timeout):
        simulator.refresh(refresh_token, timeout=0.5)

    simulator.clear_faults()
    assert simulator.refresh(refresh_token).status_code == 200
    assert simulator.stats()["faults_injected"]["timeout"] == 1


def test_a_short_timeout_hold_ends_in_a_closed_connection(
    simulator: Simulator,
) -> None:
    """A hold shorter than the client's patience closes the connection unanswered."""
    simulator.set_faults(timeout_rate=1.0, timeout_hold_seconds=0.2)

    with pytest.raises(requests.ConnectionError):
        simulator.refresh("sim_rt_unknown", timeout=5)


@pytest.mark.parametrize("fault", ["malformed_rate", "truncated_rate"])
def test_a_broken_json_body_does_not_process_the_request(
    simulator: Simulator, fault: str
) -> None:
    """A 200 whose body is not JSON leaves the refresh token unspent."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    simulator.set_faults(**{fault: 1.0})

    response = simulator.refresh(refresh_token)

    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/json")
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.text)
    simulator.clear_faults()
    assert simulator.refresh(refresh_token).status_code == 200


def test_an_html_error_page_comes_with_a_gateway_status(simulator: Simulator) -> None:
    """A proxy's HTML page, not JSON, with the configured 5xx."""
    simulator.set_faults(html_error_rate=1.0, html_error_status=503)

    response = simulator.refresh("sim_rt_unknown")

    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    assert "<h1>503 Service Unavailable</h1>" in response.text


def test_a_dropped_response_was_processed_all_the_same(
    simulator: Simulator,
) -> None:
    """The token rotated though the client never heard: its next try is a reuse."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    simulator.set_faults(drop_response_rate=1.0)

    with pytest.raises(requests.ConnectionError):
        simulator.refresh(refresh_token)

    simulator.clear_faults()
    assert simulator.refresh(refresh_token).status_code == 403
    stats = simulator.stats()
    assert stats["faults_injected"]["drop_response_after_processing"] == 1
    assert stats["refreshes"]["ok"] == 1
    assert stats["reuse_detections"] == 1


def test_faults_can_reach_revoke_and_query(simulator: Simulator) -> None:
    """``apply_to`` extends faults to the other endpoints."""
    tokens = simulator.issue_tokens()
    simulator.set_faults(error_rate=1.0, apply_to=["revoke", "query"])

    revoke = requests.post(
        simulator.revoke_url,
        json={"token": tokens["refresh_token"], **simulator.client_auth()},
        timeout=5,
    )
    query = requests.post(
        simulator.query_url,
        json={"query": "x"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
        timeout=5,
    )

    assert (revoke.status_code, query.status_code) == (503, 503)
    assert simulator.refresh(tokens["refresh_token"]).status_code == 200


def test_invalid_fault_settings_are_refused(simulator: Simulator) -> None:
    """A misspelt or out-of-range setting is a 400 that names it."""
    for body in (
        {"error_rat": 0.5},
        {"error_rate": 2},
        {"error_rate": "0.5"},
        {"error_rate": 0.6, "timeout_rate": 0.6},
    ):
        response = requests.put(f"{simulator.url}/admin/faults", json=body, timeout=5)
        assert response.status_code == 400, body


def test_faults_are_reproducible_with_the_same_seed(simulator: Simulator) -> None:
    """After a reset, the seeded generator draws the same faults again."""

    def draw() -> list[int]:
        simulator.set_faults(error_rate=0.5)
        return [simulator.refresh("sim_rt_x").status_code for _ in range(30)]

    first = draw()
    simulator.reset()

    assert draw() == first


def test_every_rate_limited_response_carries_the_headers(
    simulator: Simulator,
) -> None:
    """x-ratelimit-* are on every answer, and an empty bucket gives Auth0's 429."""
    simulator.set_faults(rate_limit_per_second=0.01, rate_limit_burst=3)

    responses = [simulator.refresh("sim_rt_unknown") for _ in range(4)]

    assert [r.status_code for r in responses] == [403, 403, 403, 429]
    assert [r.headers["x-ratelimit-remaining"] for r in responses] == [
        "2",
        "1",
        "0",
        "0",
    ]
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == "3"
        assert int(response.headers["x-ratelimit-reset"]) >= int(time.time())
    assert responses[-1].json() == {
        "error": "access_denied",
        "error_description": "Global limit has been reached",
    }
    assert "Retry-After" not in responses[-1].headers
    stats = simulator.stats()
    assert stats["rate_limited"] == 1
    assert stats["token_requests"] == 4


def test_the_rate_limit_can_answer_500_with_retry_after(simulator: Simulator) -> None:
    """The observed 500-instead-of-429 quirk, with an optional Retry-After."""
    simulator.set_faults(
        rate_limit_per_second=0.01,
        rate_limit_burst=1,
        rate_limit_status=500,
        retry_after=True,
    )

    simulator.refresh("sim_rt_unknown")
    limited = simulator.refresh("sim_rt_unknown")

    assert limited.status_code == 500
    assert limited.json()["error"] == "access_denied"
    assert int(limited.headers["Retry-After"]) >= 1


def test_the_rate_limit_refills_at_the_next_second(simulator: Simulator) -> None:
    """A drained bucket takes requests again once the reset second has come."""
    simulator.set_faults(rate_limit_per_second=1, rate_limit_burst=1)
    responses = [simulator.refresh("sim_rt_unknown") for _ in range(3)]
    reset = max(int(r.headers["x-ratelimit-reset"]) for r in responses)

    assert 429 in [r.status_code for r in responses]
    wait_for(lambda: time.time() >= reset, timeout=3, message="the reset second")
    assert simulator.refresh("sim_rt_unknown").status_code == 403


def test_revocation_shares_the_rate_limit(simulator: Simulator) -> None:
    """/oauth/revoke draws from the same bucket and carries the same headers."""
    simulator.set_faults(rate_limit_per_second=0.01, rate_limit_burst=1)
    simulator.refresh("sim_rt_unknown")

    response = requests.post(
        simulator.revoke_url,
        json={"token": "x", **simulator.client_auth()},
        timeout=5,
    )

    assert response.status_code == 429
    assert response.headers["x-ratelimit-remaining"] == "0"
