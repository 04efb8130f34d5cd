"""``guard rules push`` against a real redis-server."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import redis

from ext.sources import RedisRuleSource, cli
from guard import Guard, ManualClock
from tests.redis_server import RedisServer, free_port

pytestmark = pytest.mark.redis


def guard_rules(*argv: str) -> int:
    # The same wiring as ext.cli's dispatcher: add_arguments on the "rules" parser, run.
    parser = argparse.ArgumentParser(prog="guard rules")
    cli.add_arguments(parser)
    return cli.run(parser.parse_args(list(argv)))


CONFIG = """\
flow:
  - resource: orders.create
    count: 100
    cluster: {url: "redis://127.0.0.1:6390/0", threshold: avg_local}
degrade:
  - {resource: pay, strategy: error_count, threshold: 3, recovery_sec: 5}
sidecar:
  listen: 127.0.0.1:15000
"""


def test_push_stores_and_publishes_the_rule_sections(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "guard.yaml"
    path.write_text(CONFIG)
    engine = Guard(clock=ManualClock(0))
    with RedisRuleSource(redis.Redis(port=redis_server.port), engine, key="fleet") as source:
        deadline = time.monotonic() + 3
        while source.reads < 2:
            assert time.monotonic() < deadline
            time.sleep(0.005)
        assert guard_rules("push", str(path), "--redis", redis_server.url, "--key", "fleet") == 0
        deadline = time.monotonic() + 1
        while not engine.rules.flow:
            assert time.monotonic() < deadline
            time.sleep(0.002)
    assert "1 subscriber(s) notified" in capsys.readouterr().out
    stored = json.loads(redis_client.get("fleet"))
    assert set(stored) == {"flow", "degrade", "authority", "system", "param_flow"}  # no sidecar
    assert stored["flow"][0]["cluster"]["threshold"] == "avg_local"
    assert engine.rules.flow[0].resource == "orders.create"
    assert engine.rules.degrade[0].threshold == 3


def test_invalid_file_publishes_nothing(
    tmp_path: Path,
    redis_server: RedisServer,
    redis_client: redis.Redis,
    capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("flow:\n  - resource: a\n    count: -1\n  - count: 2\n")
    assert guard_rules("push", str(path), "--redis", redis_server.url) == 1
    err = capsys.readouterr().err
    assert f"{path}: flow[0].count: must be >= 0" in err
    assert f"{path}: flow[1].resource: required" in err
    assert redis_client.get("guard:rules") is None


def test_unreachable_redis_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("flow: []\n")
    assert guard_rules("push", str(path), "--redis", f"redis://127.0.0.1:{free_port()}/0") == 1
    err = capsys.readouterr().err
    assert err.startswith("guard rules push: cannot publish to redis://127.0.0.1:")
    assert "Traceback" not in err
    assert guard_rules() == 2
