"""/dashboard in headless Chromium against a running sidecar under load."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from tests.ext.helpers import Upstream, one

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    # A missing browser fails the test: `apt-get install -y chromium` provides it.
    assert path, "Chromium not found: apt-get install -y chromium"
    return path


def browse(tmp_path: Path, url: str, *extra: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    return subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *extra, url],
        capture_output=True,
        text=True,
        timeout=90,
    )


def attr(dom: str, element_id: str, name: str) -> float:
    found = re.search(rf'id="{element_id}"[^>]*?data-{name}="([\d.]+)"', dom) or re.search(
        rf'data-{name}="([\d.]+)"[^>]*?id="{element_id}"', dom
    )
    assert found, f"#{element_id} data-{name} not in the page"
    return float(found.group(1))


@pytest.mark.slow
def test_dashboard_shows_live_non_zero_data(
    start_sidecar, upstream: Upstream, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    sc = start_sidecar(
        upstream.url,
        routes=[{"prefix": "/orders", "resource": "orders.create"}],
        rules={"flow": [{"resource": "orders.create", "count": 10}]},
    )
    page = one(sc.admin_port, "/dashboard")
    assert page.status == 200 and page.header("content-type").startswith("text/html")
    html = page.body.decode()
    # self-contained: nothing loaded from anywhere else
    assert not re.search(r"(src|href)=|https?://|@import", html)
    assert "default-src 'none'" in (page.header("content-security-policy") or "")

    stop = threading.Event()

    def load() -> None:  # ~40 requests/s against a limit of 10: passes and blocks
        while not stop.is_set():
            one(sc.port, "/orders/1")
            stop.wait(0.025)

    driver = threading.Thread(target=load, daemon=True)
    driver.start()
    try:
        stop.wait(1.0)
        url = f"{sc.admin_url}/dashboard"
        done = browse(tmp_path, url, "--dump-dom", "--virtual-time-budget=5000")
        assert done.returncode == 0, done.stderr[-2000:]
        dom = done.stdout
        shot = tmp_path / "dashboard.png"
        done = browse(
            tmp_path,
            url,
            f"--screenshot={shot}",
            "--window-size=1400,1100",
            "--virtual-time-budget=5000",
        )
        assert done.returncode == 0, done.stderr[-2000:]
    finally:
        stop.set()
        driver.join(5)
    assert attr(dom, "status", "polls") >= 2  # it kept polling
    assert attr(dom, "total-pass", "value") > 0
    assert attr(dom, "total-block", "value") > 0
    assert attr(dom, "chart-pass", "max") > 0  # the charts drew non-zero series
    assert attr(dom, "chart-block", "max") > 0
    assert attr(dom, "chart-rt", "max") > 0
    assert attr(dom, "resource-count", "value") >= 1
    assert re.search(r"<td>orders\.create</td>", dom)
    assert 'class="badge closed"' in dom
    assert "upstream instances" in dom and upstream.url in dom
    assert shot.exists() and shot.stat().st_size > 20_000, "no screenshot"
    print(f"dashboard screenshot: {shot}")
