"""The operators' status page: refused without its token, a chart with it."""

from __future__ import annotations

import io
import re
import secrets
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask.testing import FlaskClient
from PIL import Image

from shared.settings import Settings
from tests.web.conftest import CHROMIUM, CHROMIUM_ARGS, WebServer
from web import create_app


@pytest.fixture
def expiring_users(database: sa.Engine) -> Iterator[list[str]]:
    """Connected users whose tokens expire over the next day, most in one hour."""
    now = datetime.now(UTC)
    hours = [1, 1, 1, 1, 1, 1, 5, 5, 12, 20]
    ids = [str(10**13 + secrets.randbelow(10**9)) for _ in hours]
    with database.begin() as connection:
        connection.execute(
            sa.text(
                "INSERT INTO users (id, sid_status, sid_expires_at, sid_refresh_at) "
                "VALUES (:id, 'connected', :expires, :expires)"
            ),
            [
                {"id": int(user_id), "expires": now + timedelta(hours=hour, minutes=10)}
                for user_id, hour in zip(ids, hours, strict=True)
            ],
        )
    yield ids
    with database.begin() as connection:
        connection.execute(
            sa.text("DELETE FROM users WHERE id = ANY(:ids)"),
            {"ids": [int(user_id) for user_id in ids]},
        )


@pytest.fixture
def status_client(make_settings: Callable[..., Settings]) -> tuple[FlaskClient, str]:
    token = secrets.token_urlsafe(16)
    app = create_app(make_settings(SIDTOKENS_STATUS_TOKEN=token))
    return app.test_client(), token


def test_without_the_setting_there_is_no_status_page(client: FlaskClient) -> None:
    """With SIDTOKENS_STATUS_TOKEN unset the page does not exist."""
    response = client.get("/status")

    assert response.status_code == 404


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(None, id="no-token"),
        pytest.param("Bearer wrong", id="wrong-bearer"),
    ],
)
def test_a_request_without_the_token_is_refused(
    status_client: tuple[FlaskClient, str], authorization: str | None
) -> None:
    """No or a wrong token gets 401 and a form, never the figures."""
    client, _ = status_client
    headers = {"Authorization": authorization} if authorization else {}

    response = client.get("/status", headers=headers)

    assert response.status_code == 401
    assert 'name="token"' in response.text
    assert "expiry-chart" not in response.text


def test_a_wrong_token_in_the_form_is_refused(
    status_client: tuple[FlaskClient, str],
) -> None:
    """Entering the wrong token sets no cookie and says so."""
    client, _ = status_client

    response = client.post("/status", data={"token": "guess"})

    assert response.status_code == 401
    assert "not right" in response.text
    assert "Set-Cookie" not in response.headers


def test_the_token_shows_users_refreshes_failures_and_the_chart(
    status_client: tuple[FlaskClient, str], expiring_users: list[str]
) -> None:
    """With the bearer token the page shows every section and the SVG chart."""
    client, token = status_client

    response = client.get("/status", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    for heading in ("Users", "Refreshing", "Failures", "Upcoming expiries"):
        assert f"<h2>{heading}</h2>" in response.text
    assert '<svg xmlns="http://www.w3.org/2000/svg"' in response.text
    assert response.text.count('class="bar"') == 48
    # Six of ours expire in one half hour; other tests' users may add to it.
    peak = re.search(r"Busiest half hour: (\d+) tokens", response.text)
    assert peak is not None
    assert int(peak.group(1)) >= 6
    assert token not in response.text


def test_the_status_page_renders_its_chart_in_a_real_browser(
    web_server: WebServer, expiring_users: list[str]
) -> None:
    """Chromium shows the refusal, then after the token a chart with visible bars."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is absent")
    from playwright.sync_api import sync_playwright

    token = web_server.settings.status_token
    assert token is not None
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS
        )
        page = chromium.new_page(viewport={"width": 900, "height": 1400})
        refused = page.goto(f"{web_server.origin}/status")
        assert refused is not None
        refused_status = refused.status
        page.fill("#token", token)
        page.click("button[type=submit]")
        page.wait_for_selector("#expiry-chart")
        png = page.locator("#expiry-chart").screenshot()
        page.screenshot(path=str(web_server.child.log_path.with_name("status.png")))
        chromium.close()

    assert refused_status == 401
    chart = Image.open(io.BytesIO(png)).convert("RGB")
    bar_blue = sum(
        1 for pixel in chart.get_flattened_data() if pixel[2] > 180 and pixel[0] < 60
    )
    assert chart.width >= 600
    # Ten tokens drawn as bars: a clearly visible share of the chart is bar-blue.
    assert bar_blue > 0.01 * chart.width * chart.height
