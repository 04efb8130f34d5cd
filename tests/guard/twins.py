"""Run one engine test against either twin of a slot's compiled module.

The chain picks its twin once per process; a slot's check module can still be swapped per
test, because the pure twin's classes subclass whatever chain classes were loaded (the
compiled ``Check`` calls a Python override like any other). ``use_twin`` points a selector
module (``guard.degrade.breaker``...) at ``_<name>_py`` or ``_<name>_c`` for one test.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest

__all__ = ["use_twin"]


def use_twin(monkeypatch: pytest.MonkeyPatch, selector: str, impl: str) -> Any:
    """Make ``selector``'s names come from its ``impl`` ("py" or "c") twin; return the twin."""
    sel = importlib.import_module(selector)
    base = sel._mod.__name__.rsplit("_", 1)[0] if hasattr(sel, "_mod") else None
    if base is None:
        raise AssertionError(f"{selector} is not a twin selector")
    twin = importlib.import_module(f"{base}_{impl}")
    for name in sel.__all__:
        if name != "IMPLEMENTATION":
            monkeypatch.setattr(sel, name, getattr(twin, name))
    monkeypatch.setattr(sel, "IMPLEMENTATION", impl)
    return twin
