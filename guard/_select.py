"""Choosing between a compiled twin and its pure-Python source."""

from __future__ import annotations

import importlib
import os
import warnings
from types import ModuleType

__all__ = ["PURE", "load_twin"]

PURE = os.environ.get("GUARD_PURE", "") not in ("", "0")


def load_twin(base: str) -> tuple[ModuleType, str]:
    """Import ``<base>_c`` (compiled) or ``<base>_py`` (pure); return it and ``"c"``/``"py"``.

    A missing or broken compiled module warns once and the pure one is used, so a broken
    build is visible (tests fail on the warning) rather than silently slow.
    """
    if not PURE:
        try:
            return importlib.import_module(base + "_c"), "c"
        except ImportError as exc:
            warnings.warn(
                f"{base}_c could not be imported ({exc}); using the pure-Python twin. "
                "Run `make build`, or set GUARD_PURE=1 to choose it on purpose.",
                RuntimeWarning,
                stacklevel=2,
            )
    return importlib.import_module(base + "_py"), "py"
