"""The SID client turns every provider answer into one of our exceptions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest

from shared import settings as settings_module
from shared.errors import (
    ClientMisconfigured,
    GrantRefused,
    MalformedResponse,
    ProviderError,
    ProviderUnavailable,
    RateLimited,
)
from shared.oauth import Pkce, SidClient
from tests.plugins.simulator import Simulator


def _client(simulator: Simulator, **env: str) -> SidClient:
    settings = settings_module.load(
        {
            "SIDTOKENS_ENV": "development",
            **simulator.env(),
            "SIDTOKENS_HTTP_TIMEOUT_SECONDS": "1",
            **env,
        }
    )
    return SidClient(settings)


def test_a_rotating_refresh_returns_a_new_refresh_token(simulator: Simulator) -> None:
    """The grant carries the rotated token and an absolute, aware expiry."""
    tokens = simulator.issue_tokens("alice")

    grant = _client(simulator).refresh(tokens["refresh_token"])

    assert grant.refresh_token not in {None, tokens["refresh_token"]}
    assert grant.expires_at > datetime.now(UTC) + timedelta(hours=23)
    assert "sim_" not in repr(grant)


def test_a_non_rotating_refresh_keeps_the_refresh_token_it_sent(
    start_simulator: Callable[..., Simulator],
) -> None:
    """A provider that omits refresh_token leaves the old one in the grant."""
    simulator = start_simulator(rotation=False)
    tokens = simulator.issue_tokens("bob")

    grant = _client(simulator).refresh(tokens["refresh_token"])

    assert grant.refresh_token == tokens["refresh_token"]


def test_the_authorize_url_carries_every_parameter(simulator: Simulator) -> None:
    """It names the client, redirect, scope, state, S256 challenge, audience, extras."""
    client = _client(
        simulator,
        SID_AUDIENCE="https://api.sid.ai/api/v1/",
        SIDTOKENS_AUTHORIZE_EXTRA_PARAMS="prompt=consent",
    )
    pkce = Pkce.generate()

    url = client.authorize_url(state="the-state", code_challenge=pkce.challenge)

    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params == {
        "response_type": "code",
        "client_id": simulator.client_id,
        "redirect_uri": simulator.redirect_uri,
        "scope": "query:data offline_access",
        "state": "the-state",
        "code_challenge": pkce.challenge,
        "code_challenge_method": "S256",
        "audience": "https://api.sid.ai/api/v1/",
        "prompt": "consent",
    }
    assert len(pkce.verifier) >= 43


@pytest.mark.parametrize(
    ("faults", "expected", "status"),
    [
        pytest.param(
            {"error_rate": 1.0, "error_status": 503}, ProviderUnavailable, 503, id="5xx"
        ),
        pytest.param(
            {"html_error_rate": 1.0}, ProviderUnavailable, 502, id="html-error-page"
        ),
        pytest.param(
            {"malformed_rate": 1.0}, MalformedResponse, 200, id="malformed-json"
        ),
        pytest.param(
            {"truncated_rate": 1.0}, MalformedResponse, 200, id="truncated-json"
        ),
        pytest.param(
            {"timeout_rate": 1.0, "timeout_hold_seconds": 3},
            ProviderUnavailable,
            None,
            id="timeout",
        ),
    ],
)
def test_transient_failures_are_retryable_errors(
    simulator: Simulator,
    faults: dict[str, object],
    expected: type[ProviderError],
    status: int | None,
) -> None:
    """5xx, HTML pages, broken JSON and silence map to retryable errors."""
    tokens = simulator.issue_tokens("carol")
    simulator.set_faults(rate_limit_per_second=0, **faults)

    with pytest.raises(expected) as caught:
        _client(simulator).refresh(tokens["refresh_token"])

    assert caught.value.retryable
    assert caught.value.status == status
    assert tokens["refresh_token"] not in str(caught.value)


def test_a_refused_refresh_token_is_a_grant_refusal(simulator: Simulator) -> None:
    """403 invalid_grant means the user must connect again; it is not retryable."""
    with pytest.raises(GrantRefused) as caught:
        _client(simulator).refresh("sim_rt_never-issued")

    assert (caught.value.status, caught.value.error) == (403, "invalid_grant")
    assert not caught.value.retryable


def test_a_wrong_client_secret_is_a_configuration_error(simulator: Simulator) -> None:
    """401 from the token endpoint points at our credentials, not at the user."""
    with pytest.raises(ClientMisconfigured) as caught:
        _client(simulator, SID_CLIENT_SECRET="wrong").refresh("sim_rt_any")

    assert caught.value.status == 401
    assert "wrong" not in str(caught.value)


def test_a_429_says_until_when(simulator: Simulator) -> None:
    """An empty bucket is RateLimited with the reset time the provider gave."""
    tokens = simulator.issue_tokens("dave")
    simulator.set_faults(rate_limit_per_second=1, rate_limit_burst=1)
    client = _client(simulator)
    client.refresh(tokens["refresh_token"])

    with pytest.raises(RateLimited) as caught:
        client.refresh("sim_rt_whatever")

    now = datetime.now(UTC)
    assert (
        now - timedelta(seconds=1)
        <= caught.value.reset_at
        <= now + timedelta(seconds=2)
    )
