"""Applying a JSON object from the admin API to a settings dataclass, checked.

A test that misspells a setting or sends ``"5"`` for a number should fail with a 400
that says so, not run against a simulator that silently ignored it.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

D = TypeVar("D")


def _accepts(expected: Any, value: object) -> bool:
    """Whether a JSON value fits a simple annotation, unions and tuples included."""
    origin = typing.get_origin(expected)
    if origin in (typing.Union, types.UnionType):
        return any(_accepts(option, value) for option in typing.get_args(expected))
    if origin is tuple:
        item = typing.get_args(expected)[0]
        return isinstance(value, list) and all(_accepts(item, v) for v in value)
    if expected is type(None):
        return value is None
    if expected is bool:
        return isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, expected)


def _converted(expected: Any, value: object) -> object:
    """JSON lists become tuples and whole numbers become floats where so annotated."""
    if isinstance(value, list):
        return tuple(value)
    if expected is float and isinstance(value, int):
        return float(value)
    return value


def updated(current: D, changes: Mapping[str, object]) -> D:
    """A copy of the dataclass ``current`` with ``changes``, or ``ValueError``.

    Range checks are the dataclass's own, in its ``__post_init__``.
    """
    assert dataclasses.is_dataclass(current) and not isinstance(current, type)
    hints = typing.get_type_hints(type(current))
    names = {field.name for field in dataclasses.fields(current)}
    unknown = sorted(set(changes) - names)
    if unknown:
        known = ", ".join(sorted(names))
        raise ValueError(f"unknown setting(s) {', '.join(unknown)}; known: {known}")
    checked: dict[str, object] = {}
    for name, value in changes.items():
        if not _accepts(hints[name], value):
            raise ValueError(f"{name}={value!r} does not fit {hints[name]}")
        checked[name] = _converted(hints[name], value)
    replaced: D = dataclasses.replace(current, **checked)
    return replaced


def described(settings: object) -> dict[str, object]:
    """A dataclass as a JSON-ready dictionary (tuples become lists)."""
    assert dataclasses.is_dataclass(settings) and not isinstance(settings, type)
    return {
        field.name: _jsonable(getattr(settings, field.name))
        for field in dataclasses.fields(settings)
    }


def _jsonable(value: object) -> object:
    return list(value) if isinstance(value, tuple) else value
