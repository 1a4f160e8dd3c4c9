"""The front door: consent page, approval, denial and the refusals of spec §7."""

from __future__ import annotations

import pytest
import requests

from tests.plugins.simulator import Simulator, pkce_pair, query_params


def test_the_consent_page_has_stable_controls_for_a_browser(
    simulator: Simulator,
) -> None:
    """The page names its user field and decision buttons so tests can drive it."""
    page = requests.get(simulator.authorization_url(state="s"), timeout=5)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    for element in (
        'name="user"',
        'id="approve" name="decision" value="approve"',
        'id="deny" name="decision" value="deny"',
        'name="request_id"',
        '<option value="bob">',
    ):
        assert element in page.text


def test_approval_redirects_with_a_code_and_the_exact_state(
    simulator: Simulator,
) -> None:
    """Approve sends the browser back with ``code`` and ``state`` untouched."""
    state = "a b&c=d/é"

    location = simulator.approve(simulator.authorization_url(state=state), "bob")

    assert location.startswith(simulator.redirect_uri + "?")
    params = query_params(location)
    assert params["state"] == state
    assert len(params["code"]) > 20
    assert simulator.stats()["codes_issued"] == 1


def test_denial_redirects_with_access_denied_and_the_state(
    simulator: Simulator,
) -> None:
    """Deny sends ``error=access_denied`` and SID's description with the state."""
    location = simulator.deny(simulator.authorization_url(state="xyz"))

    assert query_params(location) == {
        "error": "access_denied",
        "error_description": "User did not authorize the request",
        "state": "xyz",
    }
    assert simulator.stats()["consents"]["denied"] == 1


@pytest.mark.parametrize(
    "redirect_uri",
    [
        "http://127.0.0.1:5000/api/sid/callback/extra",
        "http://127.0.0.1:5001/api/sid/callback",
        "https://evil.example/callback",
    ],
    ids=["longer-path", "other-port", "other-host"],
)
def test_an_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(
    simulator: Simulator, redirect_uri: str
) -> None:
    """Only an exact registered match is trusted; anything else shows a page."""
    url = simulator.authorization_url(state="s", redirect_uri=redirect_uri)

    page = requests.get(url, allow_redirects=False, timeout=5)

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "Callback URL mismatch" in page.text


def test_an_unknown_client_gets_an_error_page_not_a_redirect(
    simulator: Simulator,
) -> None:
    """A client_id nobody registered is never redirected anywhere."""
    url = simulator.authorization_url(state="s").replace(
        simulator.client_id, "someone-else"
    )

    page = requests.get(url, allow_redirects=False, timeout=5)

    assert page.status_code == 400
    assert "Location" not in page.headers
    assert "Unknown client" in page.text


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"response_type": "token"}, "unsupported_response_type"),
        ({"scope": "query:data admin:everything"}, "invalid_scope"),
        ({"scope": "offline_access"}, "invalid_scope"),
        (
            {"code_challenge": pkce_pair()[1], "code_challenge_method": "plain"},
            "invalid_request",
        ),
        ({"code_challenge_method": "S256"}, "invalid_request"),
        (
            {"code_challenge": "short", "code_challenge_method": "S256"},
            "invalid_request",
        ),
        ({"audience": "https://elsewhere.example/"}, "access_denied"),
        ({"prompt": "none"}, "login_required"),
    ],
    ids=[
        "response-type",
        "unknown-scope",
        "missing-query-scope",
        "plain-pkce",
        "method-without-challenge",
        "malformed-challenge",
        "unknown-audience",
        "prompt-none",
    ],
)
def test_a_bad_request_for_a_trusted_redirect_comes_back_as_an_error_redirect(
    simulator: Simulator, changes: dict[str, str], error: str
) -> None:
    """Once the redirect URI is trusted, refusals go back to it with the state."""
    url = simulator.authorization_url(state="st8", **changes)

    location = simulator.approve(url)

    assert location.startswith(simulator.redirect_uri + "?")
    params = query_params(location)
    assert params["error"] == error
    assert params["error_description"]
    assert params["state"] == "st8"
    assert "code" not in params


def test_the_sid_audience_is_accepted(simulator: Simulator) -> None:
    """The audience SID once documented passes through to a normal consent."""
    url = simulator.authorization_url(audience="https://api.sid.ai/api/v1/")

    location = simulator.approve(url)

    assert "code" in query_params(location)


def test_a_consent_decision_counts_once(simulator: Simulator) -> None:
    """Posting the same consent form twice does not mint a second code."""
    page = requests.get(simulator.authorization_url(), timeout=5)
    request_id = page.text.split('name="request_id" value="')[1].split('"')[0]
    decision = {"request_id": request_id, "user": "alice", "decision": "approve"}
    url = f"{simulator.url}/api/oauth/authorize/decision"

    first = requests.post(url, data=decision, allow_redirects=False, timeout=5)
    second = requests.post(url, data=decision, allow_redirects=False, timeout=5)

    assert first.status_code == 302
    assert second.status_code == 400
    assert "Location" not in second.headers
