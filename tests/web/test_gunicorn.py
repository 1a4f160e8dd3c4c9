"""``gunicorn 'web:create_app()'`` with our gunicorn.conf.py, as production runs it."""

from __future__ import annotations

from pathlib import Path

import requests

from tests.support import BIN, Child, free_port, wait_for

STARTUP_TIMEOUT = 30.0


def test_gunicorn_serves_the_app_and_logs_paths_without_queries(
    base_env: dict[str, str], tmp_path: Path
) -> None:
    """Bound from SIDTOKENS_WEB_BIND; the access log shows no query value."""
    port = free_port()
    origin = f"http://127.0.0.1:{port}"
    env = {
        **base_env,
        "SIDTOKENS_WEB_BIND": f"127.0.0.1:{port}",
        "SIDTOKENS_PUBLIC_URL": origin,
    }
    child = Child(
        [str(BIN / "gunicorn"), "web:create_app()"],
        env=env,
        log_path=tmp_path / "gunicorn.log",
    )
    try:
        wait_for(
            lambda: requests.get(f"{origin}/healthz", timeout=1).ok,
            timeout=STARTUP_TIMEOUT,
            message="gunicorn",
        )

        callback = requests.get(
            f"{origin}/api/sid/callback?code=code-value-1&state=state-value-2",
            timeout=5,
        )
        link = requests.get(f"{origin}/api/sid/connect?t=link-value-3", timeout=5)
    finally:
        child.stop()

    output = child.log_path.read_text()
    assert callback.status_code == 400
    assert link.status_code == 403
    assert '"GET /api/sid/callback HTTP/1.1" 400' in output
    assert '"GET /api/sid/connect HTTP/1.1" 403' in output
    assert "value-" not in output
