"""Real ``celery -A worker worker`` and ``celery -A worker beat`` processes."""

from __future__ import annotations

from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.support import Child, celery, wait_for

STARTUP_TIMEOUT = 30.0


def log_of(child: Child) -> str:
    """What a process printed, readable after it stopped too."""
    return child.log_path.read_text(errors="replace")


def _is_ready_or_gone(child: Child) -> bool:
    return " ready." in log_of(child) or not child.is_running()


class Fleet:
    """Workers and beats started for one test, all stopped at its end."""

    def __init__(self, log_dir: Path, env: Mapping[str, str]) -> None:
        self.log_dir = log_dir
        self.env = dict(env)
        self.children: dict[str, Child] = {}

    def worker(self, name: str, *, wait: bool = True, **env: str) -> Child:
        """Start a worker as operators do, with a distinct node name."""
        child = self._start(name, ["-A", "worker", "worker", "-n", f"{name}@%h"], env)
        if wait:
            self.wait_ready(name)
        return child

    def wait_ready(self, *names: str) -> None:
        """Wait until the named workers consume tasks."""
        for name in names:
            child = self.children[name]
            wait_for(
                lambda: _is_ready_or_gone(child),  # noqa: B023 - called at once
                timeout=STARTUP_TIMEOUT,
                message=f"worker {name} to be ready",
            )
            assert child.is_running(), log_of(child)

    def beat(self, name: str, **env: str) -> Child:
        """Start a beat with its own schedule file and no pid file."""
        schedule = self.log_dir / f"{name}-schedule"
        arguments = ["-A", "worker", "beat", "-s", str(schedule), "--pidfile="]
        return self._start(name, arguments, env)

    def _start(self, name: str, arguments: list[str], env: Mapping[str, str]) -> Child:
        assert name not in self.children, f"{name} was started already"
        child = Child(
            celery(*arguments),
            env={**self.env, **env},
            log_path=self.log_dir / f"{name}.log",
        )
        self.children[name] = child
        return child

    def output(self) -> str:
        """Every process's output, for failure messages and log checks."""
        return "\n".join(
            f"--- {name} ---\n{log_of(child)}" for name, child in self.children.items()
        )

    def stop(self) -> None:
        """SIGTERM every process at once and wait for them all."""
        with ThreadPoolExecutor(max(1, len(self.children))) as pool:
            list(pool.map(lambda child: child.stop(timeout=15), self.children.values()))
