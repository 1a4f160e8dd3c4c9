"""The SID simulator as a test fixture: a real process, driven over HTTP.

Every part of the product is tested against it, so this is its whole API:

``simulator``
    A simulator shared by the session and reset before each test (state, counters,
    faults and settings back to start-up), so every test starts from nothing. Rate
    limit off, rotation on, leeway 0, redirect URI
    :data:`shared.settings.DEVELOPMENT_REDIRECT_URI`.
``start_simulator(*, redirect_uri=None, extra_redirect_uris=(), client_id=None,
client_secret=None, **flags)``
    A private simulator for one test, stopped at teardown. ``flags`` become command
    line flags: ``access_token_ttl=5`` is ``--access-token-ttl 5``,
    ``rotation=False`` is ``--no-rotation``. The rate limit is off unless
    ``rate_limit`` is given.

A :class:`Simulator` handle knows its URLs and credentials, gives the ``SID_*``
environment for a product process (:meth:`Simulator.env`), and wraps the admin API
and the consent page, so a test can connect a user without a browser::

    tokens = simulator.issue_tokens("alice")
    simulator.set_faults(error_rate=0.5)
    assert simulator.stats()["refresh_token_uses"]["max"] == 1
"""

from __future__ import annotations

import re
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import pytest
import requests

from shared.oauth import Pkce
from shared.settings import (
    DEVELOPMENT_CLIENT_ID,
    DEVELOPMENT_CLIENT_SECRET,
    DEVELOPMENT_REDIRECT_URI,
)
from tests.support import Child, free_port, wait_for

SCOPE = "query:data offline_access"
STARTUP_TIMEOUT = 20.0
REQUEST_TIMEOUT = 10.0
REQUEST_ID = re.compile(r'name="request_id" value="([^"]+)"')


def pkce_pair() -> tuple[str, str]:
    """A fresh PKCE verifier and its S256 challenge, made by our own client's code."""
    pkce = Pkce.generate()
    return pkce.verifier, pkce.challenge


def query_params(url: str) -> dict[str, str]:
    """The query string of a URL (a redirect ``Location``) as a flat dictionary."""
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def _flag_arguments(flags: Mapping[str, object]) -> list[str]:
    arguments: list[str] = []
    for name, value in flags.items():
        flag = "--" + name.replace("_", "-")
        if value is True:
            arguments.append(flag)
        elif value is False:
            arguments.append("--no-" + name.replace("_", "-"))
        elif isinstance(value, list | tuple):
            for item in value:
                arguments += [flag, str(item)]
        else:
            arguments += [flag, str(value)]
    return arguments


class Simulator:
    """A running simulator process and the client registered with it."""

    def __init__(
        self,
        child: Child,
        *,
        port: int,
        client_id: str,
        client_secret: str,
        redirect_uri: str,
    ) -> None:
        self.child = child
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.authorize_url = f"{self.url}/api/oauth/authorize"
        self.token_url = f"{self.url}/oauth/token"
        self.revoke_url = f"{self.url}/oauth/revoke"
        self.query_url = f"{self.url}/v1/users/me/query"
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uri = redirect_uri
        self.http = requests.Session()

    def __repr__(self) -> str:
        return f"<Simulator {self.url} client_id={self.client_id}>"

    def env(self) -> dict[str, str]:
        """The ``SID_*`` variables that point a product process at this simulator."""
        return {
            "SID_CLIENT_ID": self.client_id,
            "SID_CLIENT_SECRET": self.client_secret,
            "SID_REDIRECT_URI": self.redirect_uri,
            "SID_AUTHORIZE_URL": self.authorize_url,
            "SID_TOKEN_URL": self.token_url,
            "SID_REVOKE_URL": self.revoke_url,
            "SID_QUERY_URL": self.query_url,
        }

    def client_auth(self) -> dict[str, str]:
        """The client credentials as body fields (``client_secret_post``)."""
        return {"client_id": self.client_id, "client_secret": self.client_secret}

    # The admin API.

    def _admin(self, method: str, path: str, body: object = None) -> Any:
        response = self.http.request(
            method, f"{self.url}/admin/{path}", json=body, timeout=REQUEST_TIMEOUT
        )
        if response.status_code != 200:
            raise AssertionError(
                f"{method} /admin/{path} answered {response.status_code}: "
                f"{response.text}"
            )
        return response.json()

    def stats(self) -> dict[str, Any]:
        """Every counter; see ``simulator.stats`` for the keys."""
        stats: dict[str, Any] = self._admin("GET", "stats")
        return stats

    def reset_stats(self) -> None:
        self._admin("POST", "stats/reset")

    def reset(self) -> None:
        """Forget all tokens and counters; start-up faults and settings again."""
        self._admin("POST", "reset")

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """Replace the fault settings; names not given return to their defaults."""
        settings: dict[str, Any] = self._admin("PUT", "faults", faults)
        return settings

    def clear_faults(self) -> None:
        self._admin("DELETE", "faults")

    def configure(self, **config: Any) -> dict[str, Any]:
        """Change the tenant settings named (``access_token_ttl``, ``leeway``, …)."""
        settings: dict[str, Any] = self._admin("PUT", "config", config)
        return settings

    def revoke_user(self, sid_user: str) -> int:
        """Revoke every grant of a SID user, as SID's dashboard does."""
        answer = self._admin("POST", f"users/{sid_user}/revoke")
        return int(answer["grants_revoked"])

    def user(self, sid_user: str) -> dict[str, Any]:
        """A SID user's grants, families and token states (no token values)."""
        view: dict[str, Any] = self._admin("GET", f"users/{sid_user}")
        return view

    # The consent page, without a browser.

    def authorization_url(
        self,
        *,
        state: str | None = None,
        code_challenge: str | None = None,
        scope: str = SCOPE,
        redirect_uri: str | None = None,
        **extra: str,
    ) -> str:
        """An authorize URL for the registered client, as the product builds one."""
        params = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": redirect_uri or self.redirect_uri,
            "scope": scope,
        }
        if state is not None:
            params["state"] = state
        if code_challenge is not None:
            params.update(code_challenge=code_challenge, code_challenge_method="S256")
        params.update(extra)
        return f"{self.authorize_url}?{urlencode(params)}"

    def _decide(self, authorize_url: str, decision: str, sid_user: str) -> str:
        page = self.http.get(authorize_url, allow_redirects=False, timeout=10)
        if page.is_redirect:
            return page.headers["Location"]
        match = REQUEST_ID.search(page.text)
        if page.status_code != 200 or match is None:
            raise AssertionError(
                f"the authorize page answered {page.status_code}: {page.text[:500]}"
            )
        answer = self.http.post(
            urljoin(authorize_url, "/api/oauth/authorize/decision"),
            data={"request_id": match[1], "user": sid_user, "decision": decision},
            allow_redirects=False,
            timeout=REQUEST_TIMEOUT,
        )
        assert answer.status_code == 302, answer.text[:500]
        return answer.headers["Location"]

    def approve(self, authorize_url_with_query: str, sid_user: str = "alice") -> str:
        """Open the consent page, approve as ``sid_user``, return the redirect.

        An authorize request that is refused outright returns its error redirect.
        """
        return self._decide(authorize_url_with_query, "approve", sid_user)

    def deny(self, authorize_url_with_query: str) -> str:
        """Open the consent page, press Deny, return the redirect."""
        return self._decide(authorize_url_with_query, "deny", "")

    def issue_tokens(
        self, sid_user: str = "alice", *, scope: str = SCOPE
    ) -> dict[str, Any]:
        """Connect ``sid_user`` (consent, then a PKCE code exchange): the token JSON."""
        verifier, challenge = pkce_pair()
        url = self.authorization_url(
            state=secrets.token_urlsafe(16), code_challenge=challenge, scope=scope
        )
        code = query_params(self.approve(url, sid_user))["code"]
        response = self.http.post(
            self.token_url,
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": self.redirect_uri,
                "code_verifier": verifier,
                **self.client_auth(),
            },
            timeout=REQUEST_TIMEOUT,
        )
        assert response.status_code == 200, response.text
        tokens: dict[str, Any] = response.json()
        return tokens

    def refresh(self, refresh_token: str, **options: Any) -> requests.Response:
        """One refresh request with body credentials; ``options`` go to requests."""
        return self.http.post(
            self.token_url,
            data={
                "grant_type": "refresh_token",
                "refresh_token": refresh_token,
                **self.client_auth(),
            },
            **{"timeout": REQUEST_TIMEOUT, **options},
        )

    def output(self) -> str:
        """Everything the process printed so far, readable after it stopped too."""
        return self.child.log_path.read_text(errors="replace")

    def stop(self) -> int:
        """Stop the process (SIGTERM) and return its exit status."""
        self.http.close()
        return self.child.stop()


def _is_healthy(url: str) -> bool:
    return requests.get(f"{url}/healthz", timeout=1).status_code == 200


def _wait_until_healthy(simulator: Simulator) -> None:
    """Wait for ``/healthz``; on failure stop the process and show its output."""
    try:
        wait_for(
            lambda: simulator.child.is_running() and _is_healthy(simulator.url),
            timeout=STARTUP_TIMEOUT,
            message=f"the simulator on port {simulator.port}",
        )
    except AssertionError as error:
        simulator.stop()
        raise AssertionError(
            f"{error}\n--- simulator output ---\n{simulator.output()}"
        ) from None


def launch(
    log_dir: Path,
    *,
    redirect_uri: str | None = None,
    extra_redirect_uris: tuple[str, ...] = (),
    client_id: str | None = None,
    client_secret: str | None = None,
    **flags: object,
) -> Simulator:
    """Start a simulator process and wait until it answers ``/healthz``."""
    port = free_port()
    client = {
        "SID_CLIENT_ID": client_id or DEVELOPMENT_CLIENT_ID,
        "SID_CLIENT_SECRET": client_secret or DEVELOPMENT_CLIENT_SECRET,
        "SID_REDIRECT_URI": redirect_uri or DEVELOPMENT_REDIRECT_URI,
    }
    flags = {"rate_limit": 0, **flags, "redirect_uri": list(extra_redirect_uris)}
    command = [sys.executable, "-m", "simulator", "--port", str(port)]
    child = Child(
        [*command, *_flag_arguments(flags)],
        env=client,
        log_path=log_dir / f"simulator-{port}.log",
    )
    simulator = Simulator(
        child,
        port=port,
        client_id=client["SID_CLIENT_ID"],
        client_secret=client["SID_CLIENT_SECRET"],
        redirect_uri=client["SID_REDIRECT_URI"],
    )
    _wait_until_healthy(simulator)
    return simulator


@pytest.fixture(scope="session")
def simulator_process(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Simulator]:
    """One simulator for the session; use ``simulator``, which resets it per test."""
    simulator = launch(tmp_path_factory.mktemp("simulator"), seed=1)
    yield simulator
    simulator.stop()


@pytest.fixture
def simulator(simulator_process: Simulator) -> Simulator:
    """The shared simulator, reset to its start-up state for this test."""
    assert simulator_process.child.is_running(), simulator_process.output()
    simulator_process.reset()
    return simulator_process


@pytest.fixture
def start_simulator(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[..., Simulator]]:
    """Start private simulators with their own flags; all are stopped at teardown."""
    started: list[Simulator] = []
    log_dir = tmp_path_factory.mktemp("simulator")

    def start(**options: Any) -> Simulator:
        simulator = launch(log_dir, **options)
        started.append(simulator)
        return simulator

    yield start
    for simulator in started:
        simulator.stop()
