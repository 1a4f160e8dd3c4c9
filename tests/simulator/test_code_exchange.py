"""The authorization_code grant: single use, PKCE, client authentication, bodies."""

from __future__ import annotations

import pytest
import requests

from tests.plugins.simulator import Simulator, pkce_pair, query_params
from tests.support import wait_for

INVALID_CODE = {
    "error": "invalid_grant",
    "error_description": "Invalid authorization code",
}
INVALID_VERIFIER = {
    "error": "invalid_grant",
    "error_description": "Invalid authorization code or code verifier",
}


def _code(simulator: Simulator, challenge: str | None = None, **extra: str) -> str:
    url = simulator.authorization_url(state="s", code_challenge=challenge, **extra)
    return query_params(simulator.approve(url))["code"]


def _exchange(simulator: Simulator, code: str, **fields: str) -> requests.Response:
    body = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": simulator.redirect_uri,
        **simulator.client_auth(),
        **fields,
    }
    return requests.post(simulator.token_url, data=body, timeout=5)


def test_a_code_exchange_returns_the_documented_token_response(
    simulator: Simulator,
) -> None:
    """Access and refresh token, Bearer, 24 h, the scope, and no ID token."""
    verifier, challenge = pkce_pair()

    response = _exchange(simulator, _code(simulator, challenge), code_verifier=verifier)

    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "scope",
    }
    assert body["token_type"] == "Bearer"
    assert body["expires_in"] == 86400
    assert body["scope"] == "query:data offline_access"
    assert body["access_token"] != body["refresh_token"]
    assert response.headers["Content-Type"].startswith("application/json")
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Pragma"] == "no-cache"


def test_without_offline_access_no_refresh_token_is_issued(
    simulator: Simulator,
) -> None:
    """A refresh token needs the offline_access scope."""
    response = _exchange(simulator, _code(simulator, scope="query:data"))

    assert response.status_code == 200
    assert "refresh_token" not in response.json()
    assert response.json()["scope"] == "query:data"


def test_an_id_token_comes_only_with_the_openid_scope(simulator: Simulator) -> None:
    """openid in the scope adds an ID token shaped like a JWT."""
    code = _code(simulator, scope="openid query:data offline_access")

    body = _exchange(simulator, code).json()

    assert body["id_token"].count(".") == 2


def test_a_reused_code_is_refused_and_revokes_what_it_issued(
    simulator: Simulator,
) -> None:
    """The second exchange fails, and the first exchange's refresh token dies too."""
    code = _code(simulator)
    first = _exchange(simulator, code)

    second = _exchange(simulator, code)

    assert first.status_code == 200
    assert (second.status_code, second.json()) == (403, INVALID_CODE)
    refresh = simulator.refresh(first.json()["refresh_token"])
    assert refresh.status_code == 403
    assert refresh.json()["error"] == "invalid_grant"
    stats = simulator.stats()
    assert stats["code_reuse"] == 1
    assert stats["codes_exchanged"] == 1
    assert stats["families_revoked"] == 1


def test_a_redirect_uri_other_than_the_authorize_one_is_refused(
    simulator: Simulator,
) -> None:
    """The token request must repeat the exact redirect URI of the authorize step."""
    response = _exchange(
        simulator, _code(simulator), redirect_uri=simulator.redirect_uri + "/x"
    )

    assert (response.status_code, response.json()) == (403, INVALID_CODE)


def test_an_unknown_code_is_refused(simulator: Simulator) -> None:
    """A made-up code gets SID's invalid_grant answer."""
    response = _exchange(simulator, "not-a-code")

    assert (response.status_code, response.json()) == (403, INVALID_CODE)


def test_an_expired_code_is_refused(simulator: Simulator) -> None:
    """Codes live for ``code_ttl`` seconds only."""
    simulator.configure(code_ttl=1)
    code = _code(simulator)
    wait_for(
        lambda: simulator.user("alice")["codes"][0]["expired"],
        timeout=5,
        message="the code to expire",
    )

    response = _exchange(simulator, code)

    assert (response.status_code, response.json()) == (403, INVALID_CODE)


def test_a_pkce_code_needs_the_matching_verifier(simulator: Simulator) -> None:
    """A wrong verifier is refused with SID's PKCE message."""
    _, challenge = pkce_pair()
    other_verifier, _ = pkce_pair()

    response = _exchange(
        simulator, _code(simulator, challenge), code_verifier=other_verifier
    )

    assert (response.status_code, response.json()) == (403, INVALID_VERIFIER)


def test_a_pkce_code_without_a_verifier_is_refused(simulator: Simulator) -> None:
    """A challenge bound at authorize makes the verifier mandatory."""
    _, challenge = pkce_pair()

    response = _exchange(simulator, _code(simulator, challenge))

    assert (response.status_code, response.json()) == (403, INVALID_VERIFIER)


def test_a_verifier_without_a_bound_challenge_is_refused(simulator: Simulator) -> None:
    """Sending a verifier for a code issued without PKCE is a downgrade: refused."""
    verifier, _ = pkce_pair()

    response = _exchange(simulator, _code(simulator), code_verifier=verifier)

    assert (response.status_code, response.json()) == (403, INVALID_VERIFIER)


def test_a_failed_attempt_spends_the_code(simulator: Simulator) -> None:
    """After a wrong verifier, not even the right one can use the code."""
    verifier, challenge = pkce_pair()
    code = _code(simulator, challenge)
    _exchange(simulator, code, code_verifier=pkce_pair()[0])

    response = _exchange(simulator, code, code_verifier=verifier)

    assert response.status_code == 403


@pytest.mark.parametrize(
    "auth",
    [
        {"client_secret": "wrong"},
        {"client_id": "someone-else"},
        {"client_secret": None},
        {"client_id": None, "client_secret": None},
    ],
    ids=["wrong-secret", "wrong-client", "no-secret", "no-credentials"],
)
def test_a_bad_client_is_refused_with_sids_401(
    simulator: Simulator, auth: dict[str, str | None]
) -> None:
    """Every client authentication failure is 401 access_denied "Unauthorized"."""
    fields = {**simulator.client_auth(), **auth}
    body = {name: value for name, value in fields.items() if value is not None}

    response = requests.post(
        simulator.token_url,
        data={"grant_type": "authorization_code", "code": "c", **body},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json() == {
        "error": "access_denied",
        "error_description": "Unauthorized",
    }
    assert simulator.stats()["code_exchanges"]["invalid_client"] == 1


def test_the_invalid_client_body_can_be_chosen(simulator: Simulator) -> None:
    """The documented invalid_client body is one setting away."""
    simulator.configure(client_auth_error="invalid_client")

    response = requests.post(
        simulator.token_url,
        data={"grant_type": "refresh_token", "refresh_token": "r", "client_id": "x"},
        timeout=5,
    )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"


def test_client_credentials_may_come_as_http_basic(simulator: Simulator) -> None:
    """``client_secret_basic`` works as well as credentials in the body."""
    response = requests.post(
        simulator.token_url,
        data={
            "grant_type": "authorization_code",
            "code": _code(simulator),
            "redirect_uri": simulator.redirect_uri,
        },
        auth=(simulator.client_id, simulator.client_secret),
        timeout=5,
    )

    assert response.status_code == 200


def test_a_wrong_basic_secret_is_refused(simulator: Simulator) -> None:
    """HTTP Basic with the wrong secret is the same 401."""
    response = requests.post(
        simulator.token_url,
        data={"grant_type": "authorization_code", "code": _code(simulator)},
        auth=(simulator.client_id, "wrong"),
        timeout=5,
    )

    assert response.status_code == 401


def test_a_json_body_works_like_a_form(simulator: Simulator) -> None:
    """SID's Node sample posts JSON; the simulator accepts it."""
    response = requests.post(
        simulator.token_url,
        json={
            "grant_type": "authorization_code",
            "code": _code(simulator),
            "redirect_uri": simulator.redirect_uri,
            **simulator.client_auth(),
        },
        timeout=5,
    )

    assert response.status_code == 200
    assert "refresh_token" in response.json()


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"grant_type=authorization_code"),
        ("application/json", b"{not json"),
        ("application/json", b'["a list"]'),
        ("application/json", b'{"grant_type": 5}'),
    ],
    ids=["other-content-type", "broken-json", "json-list", "json-number"],
)
def test_an_unreadable_body_is_an_invalid_request(
    simulator: Simulator, content_type: str, body: bytes
) -> None:
    """Bodies other than a form or a JSON object of strings get 400."""
    response = requests.post(
        simulator.token_url,
        data=body,
        headers={"Content-Type": content_type},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "invalid_request"),
        ({"grant_type": "authorization_code"}, "invalid_request"),
        ({"grant_type": "refresh_token"}, "invalid_request"),
        ({"grant_type": "password", "username": "a"}, "unsupported_grant_type"),
    ],
    ids=["no-grant-type", "no-code", "no-refresh-token", "password-grant"],
)
def test_missing_or_unsupported_parameters_are_400(
    simulator: Simulator, fields: dict[str, str], error: str
) -> None:
    """A grant without its parameters, or an unknown grant, is a 400."""
    response = requests.post(
        simulator.token_url, data={**fields, **simulator.client_auth()}, timeout=5
    )

    assert response.status_code == 400
    assert response.json()["error"] == error
