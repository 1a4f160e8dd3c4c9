"""Revocation (RFC 7009 as Auth0 does it) and the query API behind access tokens."""

from __future__ import annotations

import pytest
import requests

from tests.plugins.simulator import Simulator
from tests.support import wait_for


def _revoke(simulator: Simulator, **fields: str) -> requests.Response:
    body = {**simulator.client_auth(), **fields}
    return requests.post(simulator.revoke_url, json=body, timeout=5)


def _query(
    simulator: Simulator, access_token: str | None, body: object = None
) -> requests.Response:
    headers = {"Authorization": f"Bearer {access_token}"} if access_token else {}
    return requests.post(
        simulator.query_url,
        json={"query": "token refresh incident"} if body is None else body,
        headers=headers,
        timeout=5,
    )


def test_revoking_a_refresh_token_ends_it_with_an_empty_200(
    simulator: Simulator,
) -> None:
    """Success is 200 with no body, and the token no longer refreshes."""
    refresh_token = simulator.issue_tokens()["refresh_token"]

    response = _revoke(simulator, token=refresh_token)

    assert response.status_code == 200
    assert response.content == b""
    assert simulator.refresh(refresh_token).status_code == 403
    assert simulator.stats()["revokes"]["refresh_token"] == 1


def test_revoking_by_form_body_works_too(simulator: Simulator) -> None:
    """RFC 7009's form encoding is accepted as well as SID's JSON."""
    refresh_token = simulator.issue_tokens()["refresh_token"]

    response = requests.post(
        simulator.revoke_url,
        data={"token": refresh_token, **simulator.client_auth()},
        timeout=5,
    )

    assert response.status_code == 200
    assert simulator.refresh(refresh_token).status_code == 403


def test_revoking_an_unknown_token_is_still_200(simulator: Simulator) -> None:
    """The answer never reveals whether a token existed."""
    response = _revoke(simulator, token="sim_rt_never_issued")

    assert (response.status_code, response.content) == (200, b"")
    assert simulator.stats()["revokes"]["unknown"] == 1


def test_revoking_with_a_bad_client_is_401(simulator: Simulator) -> None:
    """Revocation authenticates the client like the token endpoint."""
    refresh_token = simulator.issue_tokens()["refresh_token"]

    response = _revoke(simulator, token=refresh_token, client_secret="wrong")

    assert response.status_code == 401
    assert simulator.refresh(refresh_token).status_code == 200


def test_revoking_without_a_token_is_400(simulator: Simulator) -> None:
    """The token parameter is required."""
    response = _revoke(simulator)

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_revoking_an_access_token_does_nothing_by_default(
    simulator: Simulator,
) -> None:
    """Auth0 access tokens cannot be revoked: 200, and both tokens keep working."""
    tokens = simulator.issue_tokens()

    response = _revoke(simulator, token=tokens["access_token"])

    assert response.status_code == 200
    assert _query(simulator, tokens["access_token"]).status_code == 200
    assert simulator.refresh(tokens["refresh_token"]).status_code == 200


def test_revoking_an_access_token_can_revoke_the_grant(simulator: Simulator) -> None:
    """SID's own claim, that either token revokes both, is one setting away."""
    simulator.configure(access_token_revocation="revoke_grant")
    tokens = simulator.issue_tokens()

    _revoke(simulator, token=tokens["access_token"])

    assert simulator.refresh(tokens["refresh_token"]).status_code == 403


def test_a_query_with_a_valid_access_token_returns_results(
    simulator: Simulator,
) -> None:
    """The query API answers with scored documents and sync metadata."""
    access_token = simulator.issue_tokens()["access_token"]

    response = _query(simulator, access_token, {"query": "token expiry", "limit": 3})

    assert response.status_code == 200
    body = response.json()
    assert len(body["results"]) == 3
    assert body["results"][0]["title"] == "Incident review: token expiry"
    assert set(body["results"][0]) == {"score", "title", "kind", "text"}
    assert body["meta"]["sync_in_progress"] is False
    assert body["meta"]["last_sync_completed_at"]
    assert (
        response.json()
        == _query(simulator, access_token, {"query": "token expiry", "limit": 3}).json()
    )


@pytest.mark.parametrize(
    "access_token",
    [None, "sim_at_made_up"],
    ids=["no-token", "unknown-token"],
)
def test_a_query_without_a_valid_access_token_is_401(
    simulator: Simulator, access_token: str | None
) -> None:
    """No bearer token, or an unknown one, is refused."""
    response = _query(simulator, access_token)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_token"
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_refresh_token_is_no_access_token(simulator: Simulator) -> None:
    """Sending the refresh token to the query API is refused."""
    refresh_token = simulator.issue_tokens()["refresh_token"]

    assert _query(simulator, refresh_token).status_code == 401


def test_a_query_needs_a_query(simulator: Simulator) -> None:
    """A body without ``query`` is a 400."""
    access_token = simulator.issue_tokens()["access_token"]

    response = _query(simulator, access_token, {"limit": 2})

    assert response.status_code == 400
    assert simulator.stats()["queries"]["invalid_request"] == 1


def test_an_access_token_stops_working_when_it_expires(simulator: Simulator) -> None:
    """The query API refuses an access token after ``expires_in`` seconds."""
    simulator.configure(access_token_ttl=1)
    tokens = simulator.issue_tokens()

    assert tokens["expires_in"] == 1
    assert _query(simulator, tokens["access_token"]).status_code == 200
    wait_for(
        lambda: _query(simulator, tokens["access_token"]).status_code == 401,
        timeout=5,
        message="the access token to expire",
    )


def test_an_access_token_outlives_its_revoked_grant_by_default(
    simulator: Simulator,
) -> None:
    """Like Auth0's JWTs, issued access tokens stay valid until they expire."""
    tokens = simulator.issue_tokens()

    simulator.revoke_user("alice")

    assert _query(simulator, tokens["access_token"]).status_code == 200
    simulator.configure(revoked_grant_kills_access_tokens=True)
    assert _query(simulator, tokens["access_token"]).status_code == 401
