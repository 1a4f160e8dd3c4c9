"""``sidtokens connect-url`` and ``sidtokens disconnect``, run as operators run them.

The successful runs start the installed script in a process of its own; the
refusals call the same entry point in-process (starting Python with SQLAlchemy
and Flask costs seconds per run on a busy machine).
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient

from shared import runtime
from shared import settings as settings_module
from shared.cli import main
from shared.settings import Settings
from tests.plugins.simulator import Simulator
from tests.support import run_sidtokens
from tests.web.conftest import Snapshot, query_of, row_of
from web import links


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return run_sidtokens(*args, env=env, timeout=30)


@pytest.fixture
def environment(
    web_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """The process environment of an operator's shell, read afresh by the CLI."""
    for name, value in web_env.items():
        monkeypatch.setenv(name, value)
    settings_module.get.cache_clear()
    runtime.get.cache_clear()
    yield
    settings_module.get.cache_clear()
    runtime.get.cache_clear()


def test_connect_url_prints_a_link_that_starts_the_flow(
    web_env: dict[str, str], settings: Settings, user_id: str, client: FlaskClient
) -> None:
    """One line, on the public URL, signed for that user; opening it goes to SID."""
    result = _run(web_env, "connect-url", user_id)

    assert result.returncode == 0, result.stderr
    url = result.stdout.strip()
    assert url.startswith(f"{settings.public_url}/api/sid/connect?t=")
    assert links.read(query_of(url)["t"], links.Purpose.CONNECT, settings) == user_id
    assert client.get(url).status_code == 302


@pytest.mark.usefixtures("environment")
def test_connect_url_for_an_unknown_user_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 2 and a line that names the id; no link is printed."""
    status = main(["connect-url", "999999999999999997"])

    printed = capsys.readouterr()
    assert status == 2
    assert printed.out == ""
    assert "no user with id '999999999999999997'" in printed.err


def test_disconnect_revokes_and_clears(
    web_env: dict[str, str],
    simulator: Simulator,
    connected_user: str,
    database: sa.Engine,
) -> None:
    """The same work as the web route, with a line that says what happened."""
    simulator.reset_stats()

    result = _run(web_env, "disconnect", connected_user)

    assert result.returncode == 0, result.stderr
    assert "revoked at SID" in result.stdout
    assert simulator.stats()["revokes"]["refresh_token"] == 1
    assert row_of(database, connected_user)["sid_status"] == "disconnected"


@pytest.mark.usefixtures("environment")
def test_disconnect_while_sid_is_down_changes_nothing_and_says_retry(
    simulator: Simulator,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 2, a message that says nothing changed, the connection intact."""
    simulator.set_faults(error_rate=1.0, apply_to=["revoke"])
    before = storage_of(connected_user)

    status = main(["disconnect", connected_user])

    assert status == 2
    assert "nothing was changed, run the command again later" in capsys.readouterr().err
    assert storage_of(connected_user) == before


@pytest.mark.usefixtures("environment")
def test_disconnect_of_an_unknown_user_says_so(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Exit status 2 naming the id."""
    status = main(["disconnect", "999999999999999996"])

    assert status == 2
    assert "no user with id '999999999999999996'" in capsys.readouterr().err
