"""Each test's cluster rules are closed after it, so their threads stop with the test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from guard.flow.cluster import status


@pytest.fixture(autouse=True)
def _close_cluster_rules() -> Iterator[None]:
    yield
    # Left open, a rule keeps heartbeating (or probing a stopped server) until it is
    # garbage collected, and other tests would see its calls.
    for controller in status.controllers():
        controller.close()
