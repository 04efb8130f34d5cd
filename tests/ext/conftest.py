"""Fixtures for ext tests: a threaded upstream and sidecar subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.ext.helpers import SidecarProcess, Upstream, write_config


@pytest.fixture(scope="module")
def upstream() -> Iterator[Upstream]:
    up = Upstream()
    yield up
    up.close()


@pytest.fixture
def start_sidecar(tmp_path: Path) -> Iterator[Callable[..., SidecarProcess]]:
    """Start sidecars owned by the test; each must exit 0 on SIGTERM at the end."""
    started: list[SidecarProcess] = []

    def start(
        upstream_url: str, *extra: str, env: dict[str, str] | None = None, **sidecar: Any
    ) -> SidecarProcess:
        config = write_config(tmp_path / f"guard{len(started)}.yaml", upstream_url, **sidecar)
        proc = SidecarProcess(config, *extra, env=env)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        code = proc.stop()
        assert code == 0, f"sidecar exited {code}:\n{proc.log()}"
