"""Helpers shared by the in-process cluster tests."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from guard import BlockError, Guard
from guard.flow.cluster import ClusterController

# What a wait may take beyond timeout_ms: one switch interval of the interpreter (5 ms)
# plus the kernel running the woken thread, which on 2 cores shared by three workers, Redis
# and the test waits behind other runnable tasks (see test_processes.py for the figures).
ALLOWANCE_S = 0.030


def patient_client(port: int) -> redis.Redis:
    """A client of the application's that would wait 5 s for a reply.

    Without retries, as docs/cluster.md advises: redis-py's retry jitter would also use
    the ``random`` module from a background thread, which Hypothesis tests elsewhere in
    the session take for a strategy misusing it.
    """
    return redis.Redis(port=port, socket_timeout=5, retry=Retry(NoBackoff(), 0))


def rules(resource: str, url: str, count: float, **cluster: Any) -> dict[str, Any]:
    return {"flow": [{"resource": resource, "count": count, "cluster": {"url": url, **cluster}}]}


def controller(engine: Guard, resource: str) -> ClusterController:
    check = engine._core.plans[resource].checks[0]
    found = check.states[0].controller
    assert isinstance(found, ClusterController)
    return found


def attempts(engine: Guard, resource: str, n: int) -> int:
    passed = 0
    for _ in range(n):
        try:
            with engine.entry(resource):
                passed += 1
        except BlockError:
            pass
    return passed


def wait_for(condition: Callable[[], bool], seconds: float = 3.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.005)


def window_total(client: redis.Redis, key: str) -> int:
    return int(client.hget(key, "total") or 0)


def script_calls(client: redis.Redis) -> int:
    stats = client.info("commandstats")
    return sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))


class Fallbacks(logging.Handler):
    """Records each switch to local: (monotonic time of the log, ``unanswered_since``)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[float, float]] = []

    def emit(self, record: logging.LogRecord) -> None:
        if "enforcing locally" in record.getMessage():
            self.seen.append((time.monotonic(), float(record.unanswered_since)))


@contextmanager
def fallbacks() -> Iterator[Fallbacks]:
    """Collect the fallback transitions logged while the block runs."""
    handler = Fallbacks()
    logger = logging.getLogger("guard.flow.cluster")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
