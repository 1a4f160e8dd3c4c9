"""Arbitrary query strings at the flow's routes: never a 5xx, never a change."""

from __future__ import annotations

import string
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import hypothesis.strategies as st
import pytest
import redis
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings

from tests.web.conftest import Snapshot

NAMES = st.sampled_from(
    ["t", "state", "code", "error", "error_description", "sid", "reason"]
) | st.text(max_size=8)
PAIRS = st.lists(st.tuples(NAMES, st.text(max_size=120)), max_size=6).map(urlencode)
# Raw query strings, malformed percent escapes and stray separators included.
RAW = st.text(alphabet=string.printable.strip() + "%&=;", max_size=200)
QUERIES = PAIRS | RAW


def _redis_state(redis_client: redis.Redis) -> tuple[Any, ...]:
    return (sorted(redis_client.keys("*")), redis_client.xlen("sid:events"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        pytest.param("GET", "/api/sid/connect", id="connect"),
        pytest.param("GET", "/api/sid/callback", id="callback"),
        pytest.param("GET", "/api/sid/disconnect", id="disconnect-page"),
        pytest.param("POST", "/api/sid/disconnect", id="disconnect"),
    ],
)
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(query=QUERIES)
def test_no_query_string_causes_a_server_error_or_a_change(
    client: FlaskClient,
    connected_user: str,
    storage_of: Callable[[str], Snapshot],
    redis_client: redis.Redis,
    method: str,
    path: str,
    query: str,
) -> None:
    """Whatever arrives, the answer is below 500 and storage stays as it was."""
    before = (storage_of(connected_user), _redis_state(redis_client))

    response = client.open(path, method=method, query_string=query)

    assert response.status_code < 500, response.text
    assert (storage_of(connected_user), _redis_state(redis_client)) == before
