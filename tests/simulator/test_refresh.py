"""The refresh_token grant: the state machine of spec §4.2, over HTTP."""

from __future__ import annotations

import threading
from typing import Any

import requests

from tests.plugins.simulator import Simulator
from tests.support import wait_for

REFUSED = {
    "error": "invalid_grant",
    "error_description": "Unknown or invalid refresh token.",
}


def _refused(response: requests.Response) -> bool:
    return response.status_code == 403 and response.json() == REFUSED


def _rotate(simulator: Simulator, refresh_token: str) -> str:
    response = simulator.refresh(refresh_token)
    assert response.status_code == 200, response.text
    new_token: str = response.json()["refresh_token"]
    return new_token


def _wait_until(simulator: Simulator, moment: float) -> None:
    """Wait until the simulator's own clock reaches ``moment`` (epoch seconds)."""
    wait_for(
        lambda: simulator.user("alice")["now"] >= moment,
        timeout=10,
        message=f"the simulator clock to reach {moment:.1f}",
    )


def _family(simulator: Simulator, sid_user: str = "alice") -> dict[str, Any]:
    family: dict[str, Any] = simulator.user(sid_user)["grants"][0]["families"][-1]
    return family


def test_rotation_returns_a_new_refresh_token_and_retires_the_old(
    simulator: Simulator,
) -> None:
    """Each exchange gives a new refresh token and a new access token."""
    tokens = simulator.issue_tokens()

    response = simulator.refresh(tokens["refresh_token"])

    assert response.status_code == 200
    body = response.json()
    assert body["refresh_token"] != tokens["refresh_token"]
    assert body["access_token"] != tokens["access_token"]
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "query:data offline_access"
    states = [token["state"] for token in _family(simulator)["tokens"]]
    assert states == ["rotated", "active"]
    assert simulator.stats()["refreshes"]["ok"] == 1


def test_a_chain_of_rotations_uses_every_token_once(simulator: Simulator) -> None:
    """Chained refreshes each present a fresh value, which the stats can prove."""
    refresh_token = simulator.issue_tokens()["refresh_token"]

    for _ in range(5):
        refresh_token = _rotate(simulator, refresh_token)

    uses = simulator.stats()["refresh_token_uses"]
    assert uses == {"tokens": 5, "max": 1, "histogram": {"1": 5}}


def test_a_non_rotating_tenant_keeps_the_refresh_token(simulator: Simulator) -> None:
    """Without rotation there is no refresh_token in the answer; the old one lives."""
    simulator.configure(rotation=False)
    refresh_token = simulator.issue_tokens()["refresh_token"]

    first = simulator.refresh(refresh_token)
    second = simulator.refresh(refresh_token)

    assert first.status_code == second.status_code == 200
    assert "refresh_token" not in first.json()
    assert first.json()["access_token"] != second.json()["access_token"]
    assert simulator.stats()["reuse_detections"] == 0


def test_reusing_a_rotated_token_revokes_the_whole_family(
    simulator: Simulator,
) -> None:
    """Outside the leeway a reuse kills the family, the newest token included."""
    first = simulator.issue_tokens()["refresh_token"]
    newest = _rotate(simulator, first)

    reuse = simulator.refresh(first)
    after = simulator.refresh(newest)

    assert _refused(reuse)
    assert _refused(after)
    stats = simulator.stats()
    assert stats["reuse_detections"] == 1
    assert stats["families_revoked"] == 1
    assert stats["grants_revoked"] == 1
    assert stats["refreshes"] == {
        "ok": 1,
        "invalid_grant": 2,
        "invalid_client": 0,
        "invalid_request": 0,
        "invalid_scope": 0,
    }
    family = _family(simulator)
    assert family["revoked_reason"] == "reuse_detected"
    assert {token["state"] for token in family["tokens"]} == {"revoked"}


def test_reuse_detection_revokes_the_users_other_families_with_the_grant(
    simulator: Simulator,
) -> None:
    """The grant dies with the family, so a second connection of the user dies too."""
    first = simulator.issue_tokens()["refresh_token"]
    other = simulator.issue_tokens()["refresh_token"]
    _rotate(simulator, first)

    simulator.refresh(first)

    assert _refused(simulator.refresh(other))


def test_within_the_leeway_the_previous_token_may_be_reused(
    simulator: Simulator,
) -> None:
    """The immediate predecessor is accepted again inside the reuse interval."""
    simulator.configure(leeway=30)
    first = simulator.issue_tokens()["refresh_token"]
    second = _rotate(simulator, first)

    again = simulator.refresh(first)

    assert again.status_code == 200
    assert again.json()["refresh_token"] not in (first, second)
    assert simulator.refresh(second).status_code == 200
    stats = simulator.stats()
    assert stats["reuse_detections"] == 0
    assert stats["leeway_reuses"] == 1


def test_within_the_leeway_an_older_token_is_still_a_reuse(
    simulator: Simulator,
) -> None:
    """Only the newest token's parent is forgiven; its grandparent is a breach."""
    simulator.configure(leeway=30)
    first = simulator.issue_tokens()["refresh_token"]
    newest = _rotate(simulator, _rotate(simulator, first))

    reuse = simulator.refresh(first)

    assert _refused(reuse)
    assert _refused(simulator.refresh(newest))
    assert simulator.stats()["reuse_detections"] == 1


def test_the_leeway_ends_after_its_seconds(simulator: Simulator) -> None:
    """A reuse after the interval is detected like any other."""
    simulator.configure(leeway=1)
    first = simulator.issue_tokens()["refresh_token"]
    _rotate(simulator, first)
    _wait_until(simulator, _family(simulator)["tokens"][0]["rotated_at"] + 1)

    assert _refused(simulator.refresh(first))
    assert simulator.stats()["reuse_detections"] == 1


def test_the_idle_lifetime_ends_an_unused_token(simulator: Simulator) -> None:
    """A token not exchanged within the idle lifetime is refused."""
    simulator.configure(refresh_idle_lifetime=1)
    refresh_token = simulator.issue_tokens()["refresh_token"]
    wait_for(
        lambda: _family(simulator)["tokens"][0]["state"] == "expired",
        timeout=5,
        message="the idle lifetime to pass",
    )

    assert _refused(simulator.refresh(refresh_token))
    assert simulator.stats()["reuse_detections"] == 0


def test_each_exchange_renews_the_idle_lifetime_but_not_the_absolute_one(
    simulator: Simulator,
) -> None:
    """Rotation keeps a family alive past its idle lifetime, never past its maximum."""
    simulator.configure(refresh_idle_lifetime=2, refresh_absolute_lifetime=3)
    refresh_token = simulator.issue_tokens()["refresh_token"]
    created_at = _family(simulator)["created_at"]

    for seconds in (1.2, 2.4):
        _wait_until(simulator, created_at + seconds)
        refresh_token = _rotate(simulator, refresh_token)
    _wait_until(simulator, created_at + 3)

    newest = _family(simulator)["tokens"][-1]
    assert newest["idle_expires_at"] > created_at + 4
    assert _family(simulator)["expired"] is True
    assert _refused(simulator.refresh(refresh_token))


def test_a_revoked_user_cannot_refresh(simulator: Simulator) -> None:
    """Removing the app in SID's dashboard ends every refresh token of the user."""
    alice = simulator.issue_tokens("alice")["refresh_token"]
    bob = simulator.issue_tokens("bob")["refresh_token"]

    revoked = simulator.revoke_user("alice")

    assert revoked == 1
    assert _refused(simulator.refresh(alice))
    assert simulator.refresh(bob).status_code == 200
    assert simulator.user("alice")["grants"][0]["revoked"] is True


def test_an_unknown_refresh_token_is_refused(simulator: Simulator) -> None:
    """A made-up token gets the same 403 as every other refresh failure."""
    assert _refused(simulator.refresh("sim_rt_made_up"))


def test_the_legacy_access_denied_body_can_be_chosen(simulator: Simulator) -> None:
    """The older access_denied wording for refused refresh tokens is a setting."""
    simulator.configure(refresh_error="access_denied")

    response = simulator.refresh("sim_rt_made_up")

    assert response.status_code == 403
    assert response.json()["error"] == "access_denied"


def test_a_refresh_may_narrow_the_scope_but_not_widen_it(
    simulator: Simulator,
) -> None:
    """A subset of the granted scopes is allowed; anything more is invalid_scope."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    base = {"grant_type": "refresh_token", **simulator.client_auth()}

    wider = requests.post(
        simulator.token_url,
        data={**base, "refresh_token": refresh_token, "scope": "query:data email"},
        timeout=5,
    )
    narrower = requests.post(
        simulator.token_url,
        data={**base, "refresh_token": refresh_token, "scope": "query:data"},
        timeout=5,
    )

    assert (wider.status_code, wider.json()["error"]) == (400, "invalid_scope")
    assert narrower.status_code == 200
    assert narrower.json()["scope"] == "query:data"


def test_turning_rotation_off_replaces_a_rotating_family(
    simulator: Simulator,
) -> None:
    """Spec §4.1: the next exchange ends the family and issues a non-rotating token."""
    rotating = simulator.issue_tokens()["refresh_token"]
    simulator.configure(rotation=False)

    switch = simulator.refresh(rotating)
    kept = switch.json()["refresh_token"]

    assert switch.status_code == 200
    assert _refused(simulator.refresh(rotating))
    assert simulator.refresh(kept).status_code == 200
    assert "refresh_token" not in simulator.refresh(kept).json()


def test_concurrent_refreshes_with_one_token_kill_the_family(
    simulator: Simulator,
) -> None:
    """Parallel use of one token: at most one wins and the family dies, winner too."""
    refresh_token = simulator.issue_tokens()["refresh_token"]
    barrier = threading.Barrier(6)
    responses: list[requests.Response] = []

    body = {
        "grant_type": "refresh_token",
        "refresh_token": refresh_token,
        **simulator.client_auth(),
    }

    def race() -> None:
        barrier.wait(timeout=5)
        responses.append(requests.post(simulator.token_url, data=body, timeout=10))

    threads = [threading.Thread(target=race) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    winners = [r for r in responses if r.status_code == 200]
    assert len(responses) == 6
    assert len(winners) <= 1
    assert all(_refused(r) for r in responses if r.status_code != 200)
    assert simulator.stats()["reuse_detections"] >= 1
    assert simulator.stats()["refresh_token_uses"]["max"] == 6
    for winner in winners:
        assert _refused(simulator.refresh(winner.json()["refresh_token"]))
