"""Hot reload of a sidecar's config file: good edits apply, bad ones are refused and counted."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
import yaml

from tests.ext.helpers import SidecarProcess, Upstream, metric_value, one


def wait_status(sc: SidecarProcess, path: str, status: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if one(sc.port, path).status == status:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} never answered {status}:\n{sc.log()}")


def rewrite(path: Path, count: int, *, by_rename: bool = False, extra: str = "") -> None:
    data = yaml.safe_load(path.read_text())
    data["flow"] = [{"resource": "orders", "count": count}]
    text = yaml.safe_dump(data, sort_keys=False) + extra
    if by_rename:  # as vim/kubectl do: write a temp file, rename it over the original
        tmp = path.with_name(".guard.yaml.swp")
        tmp.write_text(text)
        os.replace(tmp, path)
    else:
        path.write_text(text)


@pytest.mark.parametrize("watch", ["events", "polling"])
def test_good_bad_and_renamed_files(start_sidecar, upstream: Upstream, watch: str) -> None:  # type: ignore[no-untyped-def]
    extra = () if watch == "events" else ("--poll", "0.1")
    sc = start_sidecar(upstream.url, *extra, routes=[{"prefix": "/orders", "resource": "orders"}])
    path = Path(sc.config)
    assert one(sc.port, "/orders").status == 200
    rewrite(path, 0)  # good edit in place: every request now blocked
    wait_status(sc, "/orders", 429)
    path.write_text(path.read_text().replace("count: 0", "count: -5"))  # bad edit
    sc.wait_log(r"flow\[0\]\.count.*keeping the last good rules")
    assert one(sc.port, "/orders").status == 429  # last good rules still in force
    text = one(sc.admin_port, "/metrics").body.decode()
    assert metric_value(text, "guard_rules_reload_total", result="failure") >= 1
    generation = metric_value(text, "guard_config_generation")
    rewrite(path, 1000, by_rename=True)  # editor-style replace
    wait_status(sc, "/orders", 200)
    text = one(sc.admin_port, "/metrics").body.decode()
    assert metric_value(text, "guard_config_generation") == generation + 1
    assert metric_value(text, "guard_rules_reload_total", result="success") == 2


def test_yaml_syntax_error_is_located(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(upstream.url)
    path = Path(sc.config)
    path.write_text(path.read_text() + "flow: [unclosed\n")
    sc.wait_log(r"line \d+, column \d+")
    assert one(sc.port, "/x").status == 200


def test_sighup_reloads_and_listen_change_is_only_logged(start_sidecar, upstream: Upstream) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(
        upstream.url, "--poll", "30", routes=[{"prefix": "/orders", "resource": "orders"}]
    )
    path = Path(sc.config)
    time.sleep(1.2)  # past the sidecar's start-up re-checks of the file
    data = yaml.safe_load(path.read_text())
    data["flow"] = [{"resource": "orders", "count": 0}]
    data["sidecar"]["listen"] = "127.0.0.1:1"
    path.write_text(yaml.safe_dump(data))
    assert one(sc.port, "/orders").status == 200  # not seen yet (polling every 30 s)
    sc.signal(signal.SIGHUP)
    wait_status(sc, "/orders", 429)
    sc.wait_log(r"sidecar\.listen changed")
    assert one(sc.port, "/other").status == 200  # still serving on the old port
