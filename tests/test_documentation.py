"""The README documents every setting the code reads and every series it exports."""

from __future__ import annotations

import re

from prometheus_client import REGISTRY

import shared.metrics  # noqa: F401 - registers the series
from tests.support import ROOT


def _exported() -> set[str]:
    names = set()
    for collector in REGISTRY.collect():
        if collector.name.startswith("sidtokens_"):
            suffix = "_total" if collector.type == "counter" else ""
            names.add(collector.name + suffix)
    return names


def test_the_readme_lists_exactly_the_series_we_export() -> None:
    """The metrics table in the README names each exported series once."""
    readme = (ROOT / "README.md").read_text()

    documented = set(
        re.findall(r"^\| `(sidtokens_[a-z_]+)(?:\{[^`]*\})?` \|", readme, re.M)
    )

    assert documented == _exported()


def test_every_setting_read_from_the_environment_is_documented() -> None:
    """Each variable shared/settings.py reads has a row in the README's table."""
    source = (ROOT / "shared" / "settings.py").read_text()
    readme = (ROOT / "README.md").read_text()

    variables = set(
        re.findall(r'"((?:SIDTOKENS|SID|CELERY|DATABASE|REDIS)_[A-Z_]+)"', source)
    )
    missing = [name for name in sorted(variables) if f"`{name}`" not in readme]

    assert variables
    assert missing == []
