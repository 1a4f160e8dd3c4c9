"""Signed connect and disconnect links: absolute, expiring, and refused when bad."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

import pytest
from flask.testing import FlaskClient

from shared.errors import ConfigurationError, RequestRejected
from shared.settings import Settings
from tests.support import wait_for
from tests.web.conftest import Snapshot, query_of
from web import create_app, links


def test_a_connect_url_is_absolute_on_the_public_url(settings: Settings) -> None:
    """The link starts at SIDTOKENS_PUBLIC_URL and carries only a signed token."""
    url = links.connect_url("42", settings)

    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == settings.public_url
    assert parts.path == "/api/sid/connect"
    assert set(query_of(url)) == {"t"}


def test_a_public_url_with_a_path_prefix_keeps_it(
    make_settings: Callable[..., Settings],
) -> None:
    """A web tier mounted under a prefix gets links under that prefix."""
    settings = make_settings(SIDTOKENS_PUBLIC_URL="http://127.0.0.1:5000/tools/")

    url = links.connect_url("42", settings)

    assert url.startswith("http://127.0.0.1:5000/tools/api/sid/connect?t=")


def test_a_link_names_the_user_it_was_signed_for(settings: Settings) -> None:
    """Reading a fresh link gives back the user id, as text."""
    token = query_of(links.connect_url("user-7", settings))["t"]

    user_id = links.read(token, links.Purpose.CONNECT, settings)

    assert user_id == "user-7"


def test_links_need_a_public_url(make_settings: Callable[..., Settings]) -> None:
    """Without a public URL or redirect URI there is no origin to link to."""
    settings = make_settings(SID_REDIRECT_URI="", SIDTOKENS_PUBLIC_URL="")

    with pytest.raises(ConfigurationError, match="SIDTOKENS_PUBLIC_URL"):
        links.connect_url("42", settings)


def _forged(settings: Settings, user_id: str) -> str:
    return links.connect_url(user_id, settings).replace("t=", "t=x", 1)


def _altered(settings: Settings, user_id: str) -> str:
    url = links.connect_url(user_id, settings)
    return url[:-2] + ("AA" if not url.endswith("AA") else "BB")


def _other_key(settings: Settings, user_id: str) -> str:
    import dataclasses

    other = dataclasses.replace(settings, secret_key="another-key-entirely")
    return links.connect_url(user_id, other)


def _disconnect_link(settings: Settings, user_id: str) -> str:
    return links.disconnect_url(user_id, settings).replace("disconnect", "connect")


def _missing(settings: Settings, user_id: str) -> str:
    return f"{settings.public_url}/api/sid/connect"


@pytest.mark.parametrize(
    ("make_link", "status"),
    [
        pytest.param(_forged, 403, id="forged"),
        pytest.param(_altered, 403, id="altered"),
        pytest.param(_other_key, 403, id="signed-with-another-key"),
        pytest.param(_disconnect_link, 403, id="disconnect-link-used-to-connect"),
        pytest.param(_missing, 400, id="no-token"),
    ],
)
def test_a_bad_connect_link_gets_a_page_and_touches_nothing(
    client: FlaskClient,
    settings: Settings,
    user_id: str,
    storage_of: Callable[[str], Snapshot],
    make_link: Callable[[Settings, str], str],
    status: int,
) -> None:
    """Forged, altered, foreign or missing tokens: a 4xx page, no flow, no cookie."""
    before = storage_of(user_id)

    response = client.get(make_link(settings, user_id))

    assert response.status_code == status
    assert "text/html" in response.content_type
    assert "Connect to SID button again" in response.text
    assert "Set-Cookie" not in response.headers
    assert storage_of(user_id) == before


def _has_expired(url: str, settings: Settings) -> bool:
    try:
        links.read(query_of(url)["t"], links.Purpose.CONNECT, settings)
    except RequestRejected as rejected:
        return rejected.reason == "link_expired"
    return False


def test_an_expired_connect_link_gets_a_page_and_touches_nothing(
    make_settings: Callable[..., Settings],
    user_id: str,
    storage_of: Callable[[str], Snapshot],
) -> None:
    """A link older than SIDTOKENS_CONNECT_URL_MAX_AGE_SECONDS is refused with 410."""
    settings = make_settings(SIDTOKENS_CONNECT_URL_MAX_AGE_SECONDS="1")
    client = create_app(settings).test_client()
    url = links.connect_url(user_id, settings)
    wait_for(lambda: _has_expired(url, settings), timeout=5, message="expiry")
    before = storage_of(user_id)

    response = client.get(url)

    assert response.status_code == 410
    assert "This link has expired" in response.text
    assert "Set-Cookie" not in response.headers
    assert storage_of(user_id) == before


def test_a_link_for_a_user_not_in_the_table_gets_a_404_page(
    client: FlaskClient, settings: Settings
) -> None:
    """The signature is fine but the host application has no such user."""
    response = client.get(links.connect_url("999999999999999999", settings))

    assert response.status_code == 404
    assert "This user is not known" in response.text


def test_a_link_for_an_id_the_column_cannot_hold_gets_a_404_page(
    client: FlaskClient, settings: Settings
) -> None:
    """Text that cannot be a bigint id names no user rather than failing."""
    response = client.get(links.connect_url("not-a-number", settings))

    assert response.status_code == 404
