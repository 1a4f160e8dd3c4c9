"""Every way a callback can fail, and that none of them changes what is stored.

Each test starts from a user who is already connected, so "nothing changed" means
the old tokens, the published key and the event stream are exactly as they were.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import pytest
import redis
from flask.testing import FlaskClient

from shared.settings import Settings
from tests.plugins.simulator import Simulator
from tests.support import wait_for
from tests.web.conftest import Browser, Snapshot, query_of
from web import create_app
from web.oauth_state import flow_key

CALLBACK = "http://127.0.0.1:5000/api/sid/callback"


def _callback(**params: str) -> str:
    return f"{CALLBACK}?{urlencode(params)}" if params else CALLBACK


def _reason(response: Any) -> str:
    assert response.status_code == 302, response.text
    params = query_of(response.headers["Location"])
    assert response.headers["Location"].startswith("/account?tab=sid&sid=error")
    assert params["sid"] == "error"
    return params["reason"]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({}, id="nothing"),
        pytest.param({"code": "abc"}, id="code-without-state"),
        pytest.param({"error": "access_denied"}, id="error-without-state"),
    ],
)
def test_a_callback_without_state_gets_a_400_page(
    client: FlaskClient,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
    params: dict[str, str],
) -> None:
    """No state means no flow: the page says to start again, nothing is stored."""
    before = storage_of(connected_user)

    response = client.get(_callback(**params))

    assert response.status_code == 400
    assert "No connection is in progress" in response.text
    assert storage_of(connected_user) == before


def test_a_callback_with_an_unknown_state_gets_a_400_page(
    client: FlaskClient, connected_user: str, storage_of: Callable[[str], Snapshot]
) -> None:
    """A state this tier never issued belongs to no flow."""
    before = storage_of(connected_user)

    response = client.get(_callback(code="abc", state="made-up-state"))

    assert response.status_code == 400
    assert "This connection attempt is over" in response.text
    assert storage_of(connected_user) == before


def test_a_replayed_callback_gets_a_400_page(
    browser: Browser, user_id: str, storage_of: Callable[[str], Snapshot]
) -> None:
    """The same state and code a second time: the first use consumed the state."""
    callback = browser.approve(user_id)
    assert query_of(browser.finish(callback).headers["Location"])["sid"] == "connected"
    before = storage_of(user_id)

    response = browser.finish(callback)

    assert response.status_code == 400
    assert storage_of(user_id) == before


def test_a_callback_in_another_browser_gets_a_403_page(
    browser: Browser,
    client: FlaskClient,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """A victim's browser fed an attacker's callback lacks the flow's cookie."""
    callback = browser.approve(connected_user)
    other_browser = client.application.test_client()
    before = storage_of(connected_user)

    response = other_browser.get(callback)

    assert response.status_code == 403
    assert "started in another browser" in response.text
    assert storage_of(connected_user) == before


def test_a_callback_with_a_different_cookie_gets_a_403_page(
    browser: Browser,
    client: FlaskClient,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """A browser holding its own flow cookie still cannot finish someone else's."""
    callback = browser.approve(connected_user)
    other = Browser(
        client.application.test_client(), browser.simulator, browser.settings
    )
    other.start(connected_user)
    before = storage_of(connected_user)

    response = other.finish(callback)

    assert response.status_code == 403
    assert storage_of(connected_user) == before


def test_a_state_refused_for_the_wrong_browser_is_spent(
    browser: Browser, client: FlaskClient, connected_user: str
) -> None:
    """After a mismatch even the right browser cannot use the state: single use."""
    callback = browser.approve(connected_user)
    client.application.test_client().get(callback)

    response = browser.finish(callback)

    assert response.status_code == 400


def test_a_callback_after_the_flow_expired_gets_a_400_page(
    make_settings: Callable[..., Settings],
    simulator: Simulator,
    connected_user: str,
    redis_client: redis.Redis,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """A flow lives SIDTOKENS_OAUTH_FLOW_MAX_AGE_SECONDS; later it is unknown."""
    settings = make_settings(SIDTOKENS_OAUTH_FLOW_MAX_AGE_SECONDS="1")
    browser = Browser(create_app(settings).test_client(), simulator, settings)
    callback = browser.approve(connected_user)
    key = flow_key(query_of(callback)["state"])
    wait_for(lambda: not redis_client.exists(key), timeout=5, message="flow expiry")
    before = storage_of(connected_user)

    response = browser.finish(callback)

    assert response.status_code == 400
    assert storage_of(connected_user) == before


def test_denying_on_sids_page_redirects_with_access_denied(
    browser: Browser,
    simulator: Simulator,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """The user pressed Deny: back to the app with reason=access_denied."""
    callback = simulator.deny(browser.start(connected_user))
    before = storage_of(connected_user)

    response = browser.finish(callback)

    assert _reason(response) == "access_denied"
    assert storage_of(connected_user) == before


@pytest.mark.parametrize(
    "answer",
    [
        pytest.param({"error": "server_error"}, id="server-error"),
        pytest.param({"error": "invalid_scope"}, id="invalid-scope"),
        pytest.param({}, id="neither-code-nor-error"),
    ],
)
def test_other_answers_from_sids_page_redirect_with_provider_refused(
    browser: Browser,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
    answer: dict[str, str],
) -> None:
    """Any error other than access_denied, or no code at all, is provider_refused."""
    state = query_of(browser.start(connected_user))["state"]
    before = storage_of(connected_user)

    response = browser.client.get(_callback(state=state, **answer))

    assert _reason(response) == "provider_refused"
    assert storage_of(connected_user) == before


def test_a_code_used_once_is_refused_in_a_second_flow(
    browser: Browser, user_id: str, storage_of: Callable[[str], Snapshot]
) -> None:
    """A second callback with the same code, under a fresh state: invalid_grant."""
    first = browser.approve(user_id)
    assert query_of(browser.finish(first).headers["Location"])["sid"] == "connected"
    fresh_state = query_of(browser.start(user_id))["state"]
    before = storage_of(user_id)

    response = browser.client.get(
        _callback(code=query_of(first)["code"], state=fresh_state)
    )

    assert _reason(response) == "provider_refused"
    assert storage_of(user_id) == before


@pytest.mark.parametrize(
    "faults",
    [
        pytest.param({"error_rate": 1.0}, id="503"),
        pytest.param({"error_rate": 1.0, "error_status": 500}, id="500"),
        pytest.param({"html_error_rate": 1.0}, id="html-502"),
        pytest.param({"malformed_rate": 1.0}, id="malformed-json"),
        pytest.param({"truncated_rate": 1.0}, id="truncated-json"),
        pytest.param({"timeout_rate": 1.0, "timeout_hold_seconds": 3}, id="timeout"),
    ],
)
def test_a_failing_exchange_redirects_with_provider_unavailable(
    browser: Browser,
    simulator: Simulator,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
    faults: dict[str, object],
) -> None:
    """5xx, unreadable answers and timeouts are worth another try later."""
    callback = browser.approve(connected_user)
    simulator.set_faults(**faults)
    before = storage_of(connected_user)

    response = browser.finish(callback)

    assert _reason(response) == "provider_unavailable"
    assert sum(simulator.stats()["faults_injected"].values()) == 1
    assert storage_of(connected_user) == before


def test_a_rate_limited_exchange_redirects_with_provider_unavailable(
    browser: Browser,
    simulator: Simulator,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """A 429 at the token endpoint: try again later."""
    callback = browser.approve(connected_user)
    simulator.set_faults(rate_limit_per_second=0.001, rate_limit_burst=1)
    simulator.refresh("spends-the-only-request-in-the-bucket")
    before = storage_of(connected_user)

    response = browser.finish(callback)

    assert _reason(response) == "provider_unavailable"
    assert simulator.stats()["rate_limited"] >= 1
    assert storage_of(connected_user) == before
