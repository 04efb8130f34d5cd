"""The `impl` fixture: each wheel test runs against the pure twin and the compiled one."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from tests.conftest import TWINS


@pytest.fixture(params=TWINS)
def impl(request: pytest.FixtureRequest) -> ModuleType:
    """The wheel module under test: ``timewheel._wheel_py`` or ``timewheel._wheel_c``.

    The "c" case imports the extension directly, so a missing build fails instead of skipping.
    """
    return importlib.import_module(f"timewheel._wheel_{request.param}")
