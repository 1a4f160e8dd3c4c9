"""`sidtokens doctor` names what is wrong; `sidtokens status` counts what is there."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from shared.database import sessions
from shared.doctor import Finding, diagnose
from shared.models import Status, User
from tests.plugins.simulator import Simulator
from tests.support import free_port, run_sidtokens


@pytest.fixture
def healthy_env(base_env: dict[str, str], simulator: Simulator) -> dict[str, str]:
    return {**base_env, **simulator.env()}


def _finding(findings: list[Finding], check: str) -> Finding:
    return next(finding for finding in findings if finding.check == check)


def test_a_healthy_setup_passes_every_check(healthy_env: dict[str, str]) -> None:
    """With everything up and configured, doctor exits 0 and says ok for each check."""
    result = run_sidtokens("doctor", env=healthy_env)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "FAIL" not in result.stdout
    for check in ("database", "redis", "broker", "token endpoint", "encryption"):
        assert check in result.stdout


@pytest.mark.parametrize(
    ("change", "check", "words"),
    [
        pytest.param(
            {"DATABASE_URL": "postgresql+psycopg://postgres@127.0.0.1:{port}/x"},
            "database",
            ["does not answer", "DATABASE_URL"],
            id="database-down",
        ),
        pytest.param(
            {"REDIS_URL": "redis://127.0.0.1:{port}/0"},
            "redis",
            ["does not answer", "REDIS_URL"],
            id="redis-down",
        ),
        pytest.param(
            {"SID_CLIENT_SECRET": "not-the-secret"},
            "token endpoint",
            ["rejects our client", "SID_CLIENT_SECRET"],
            id="wrong-client-secret",
        ),
        pytest.param(
            {"SID_TOKEN_URL": "http://127.0.0.1:{port}/oauth/token"},
            "token endpoint",
            ["unreachable", "SID_TOKEN_URL"],
            id="token-url-unreachable",
        ),
        pytest.param(
            {"SIDTOKENS_ENCRYPTION_KEYS": ""},
            "configuration",
            ["SIDTOKENS_ENCRYPTION_KEYS is not set"],
            id="missing-encryption-key",
        ),
    ],
)
def test_doctor_names_the_exact_problem(
    healthy_env: dict[str, str], change: dict[str, str], check: str, words: list[str]
) -> None:
    """Each broken dependency fails its own check with the variable to fix."""
    closed_port = free_port()
    env = {**healthy_env, **{k: v.format(port=closed_port) for k, v in change.items()}}

    findings = diagnose(env)

    failed = [finding for finding in findings if not finding.ok]
    assert [finding.check for finding in failed] == [check]
    for word in words:
        assert word in _finding(findings, check).detail


def test_status_counts_users_by_state_and_due_work(
    base_env: dict[str, str], database_url: str
) -> None:
    """`sidtokens status --json` reports states, due and failing users."""
    now = datetime.now(UTC)
    factory = sessions(database_url)
    rows = [
        {"sid_status": Status.CONNECTED.value, "sid_refresh_at": now - timedelta(1)},
        {"sid_status": Status.CONNECTED.value, "sid_refresh_at": now + timedelta(1)},
        {"sid_status": Status.NEEDS_RECONNECT.value, "sid_last_error": "invalid_grant"},
        {"sid_status": None},
    ]
    ids = [str(secrets.randbits(40)) for _ in rows]
    with factory() as session:
        session.execute(sa.delete(User))
        session.execute(
            sa.insert(User),
            [{"id": user_id, **row} for user_id, row in zip(ids, rows, strict=True)],
        )
        session.execute(
            sa.update(User)
            .where(User.id == ids[0])
            .values(sid_refresh_attempts=2, sid_last_error="unavailable")
        )
        session.commit()

    result = run_sidtokens("status", "--json", env=base_env)

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["users"] == {
        "connected": 2,
        "needs_reconnect": 1,
        "never_connected": 1,
    }
    assert report["due_now"] == 1
    assert report["failing"] == 1
    assert report["failures"] == {"unavailable": 1}
    assert report["provider"]["state"] == "calls allowed"
    with factory() as session:
        session.execute(sa.delete(User).where(User.id.in_(ids)))
        session.commit()
