"""The deployment files agree with each other and with the Compose specification."""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from tests.support import BIN, ROOT

PROCFILE_SERVICES = ("simulator", "web", "worker", "beat")


def _procfile() -> dict[str, str]:
    entries = {}
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        entries[name.strip()] = command.strip()
    return entries


def _compose() -> dict[str, object]:
    loaded: dict[str, object] = YAML(typ="safe").load(ROOT / "docker-compose.yml")
    return loaded


def test_the_compose_file_follows_the_compose_specification() -> None:
    """docker-compose.yml validates against the Compose specification's schema."""
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )

    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("service", PROCFILE_SERVICES)
def test_compose_runs_each_process_with_the_procfile_command(service: str) -> None:
    """Containers and `make run` start each process with the very same command."""
    services = _compose()["services"]
    assert isinstance(services, dict)

    compose_command = services[service]["command"]

    assert shlex.split(compose_command) == shlex.split(_procfile()[service])


def test_every_compose_service_but_the_one_shot_migration_has_a_healthcheck() -> None:
    """Each long-running service tells the orchestrator whether it is healthy."""
    services = _compose()["services"]
    assert isinstance(services, dict)

    missing = [
        name
        for name, service in services.items()
        if name != "migrate" and "test" not in service.get("healthcheck", {})
    ]

    assert missing == []
    assert services["migrate"]["command"] == "sidtokens migrate"


@pytest.mark.parametrize(
    "command",
    [
        "celery -A worker worker",
        "celery -A worker beat",
        "gunicorn 'web:create_app()'",
        "sidtokens migrate",
        "make run",
        "make test",
    ],
)
def test_the_readme_documents_the_commands_operators_run(command: str) -> None:
    """The README shows each command that the Procfile and compose file use."""
    readme = (ROOT / "README.md").read_text()

    assert command in readme


def test_the_image_runs_as_a_non_root_user_from_the_lock_file() -> None:
    """The Dockerfile installs locked dependencies and drops root."""
    dockerfile = Path(ROOT / "Dockerfile").read_text()

    assert "uv sync --locked" in dockerfile
    assert "\nUSER sidtokens" in dockerfile
