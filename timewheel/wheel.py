"""Selector: the compiled timing wheel, or its pure-Python twin.

``GUARD_PURE=1`` (and type checkers) get the pure twin ``_wheel_py``; otherwise the compiled
``_wheel_c`` is used, and a failed import warns once and falls back rather than hiding a broken
build. ``IMPLEMENTATION`` says which one this process got (``"c"`` or ``"py"``).
"""

from __future__ import annotations

import os
import warnings
from typing import TYPE_CHECKING

__all__ = ["IMPLEMENTATION", "Handle", "TimingWheel"]

IMPLEMENTATION: str

if TYPE_CHECKING or os.environ.get("GUARD_PURE") == "1":
    from timewheel._wheel_py import Handle, TimingWheel

    IMPLEMENTATION = "py"
else:
    try:
        from timewheel._wheel_c import Handle, TimingWheel

        IMPLEMENTATION = "c"
    except ImportError as exc:  # pragma: no cover - depends on the build
        warnings.warn(
            f"timewheel: compiled wheel unavailable ({exc}); using the pure-Python twin",
            RuntimeWarning,
            stacklevel=2,
        )
        from timewheel._wheel_py import Handle, TimingWheel

        IMPLEMENTATION = "py"
