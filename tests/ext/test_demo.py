"""guard demo end to end, as `make run` runs it (no terminal: the text summary)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.ext.helpers import ROOT


@pytest.mark.slow
def test_demo_runs_shows_each_behaviour_and_ends_by_itself() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ext.cli", "demo", "--seconds", "7"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=ROOT,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "Traceback" not in done.stderr
    seconds = [line for line in out.splitlines() if line.startswith("t=")]
    assert len(seconds) == 7
    # flow control: search is offered 60/s against a limit of 40
    blocked = [int(m) for m in re.findall(r"search: pass +\d+ block +(\d+)", out)]
    assert sum(blocked) > 50
    # warm-up: checkout passes fewer in its first second than in its last
    checkout = [int(m) for m in re.findall(r"checkout: pass +(\d+)", out)]
    assert checkout[0] < 30 and checkout[-1] > checkout[0]
    # the breaker opens during the outage and closes after it
    assert "demo.report breaker closed -> open" in out
    assert re.search(r"demo.report breaker (open|half_open) -> closed", out)
    # passive health and slow start on the flaky instance
    assert re.search(r"flaky ejected for 2s", out)
    assert "flaky back in, slow start ramp" in out
    # final table: every instance was picked, weight 2 about twice as often as weight 1
    picks = dict(re.findall(r"│ (fast|slow|flaky) +│ +\d+ │ +(\d+) │", out))
    assert set(picks) == {"fast", "slow", "flaky"}
    assert 1.6 < int(picks["fast"]) / int(picks["slow"]) < 2.4
    assert re.search(r"429: \d+", out) and re.search(r"503: \d+", out)
