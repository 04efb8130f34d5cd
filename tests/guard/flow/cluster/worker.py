"""One engine process of the cluster tests: offers paced load to a cluster rule.

Run as ``python -m tests.guard.flow.cluster.worker '<json>'`` with keys ``rules`` (the
rule mapping), ``resource``, ``rate`` (offered entries per second) and ``seconds``. Once
its rules are loaded it prints ``ready`` and reads the start time from stdin
(``time.monotonic()`` values are shared by every process of the machine, so the parent can
compare them with the moment it paused Redis). Prints one JSON line: pass times, block
count, the slowest decision, the longest wait for Redis, and the transitions: each
fallback as ``[when, when the first request Redis left unanswered was sent]``, each
recovery as its time.
"""

from __future__ import annotations

import json
import logging
import sys
import time


class _Transitions(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.fallback: list[list[float]] = []
        self.recovery: list[float] = []
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        now = time.monotonic()
        message = record.getMessage()
        self.messages.append(message)
        if "enforcing locally" in message:
            self.fallback.append([now, float(getattr(record, "unanswered_since", -1.0))])
        elif "enforcing cluster-wide" in message:
            self.recovery.append(now)


def main(spec: dict) -> dict:
    from guard import BlockError, Guard
    from guard.flow.cluster import cluster_metrics
    from guard.flow.cluster.link import links

    transitions = _Transitions()
    logger = logging.getLogger("guard.flow.cluster")
    logger.addHandler(transitions)
    logger.setLevel(logging.INFO)
    engine = Guard()
    engine.load_rules(spec["rules"])
    resource, rate = spec["resource"], float(spec["rate"])
    print("ready", flush=True)
    start, seconds = float(sys.stdin.readline()), float(spec["seconds"])
    passes: list[float] = []
    blocks = 0
    slowest = 0.0
    n = int(rate * seconds)
    while time.monotonic() < start:
        time.sleep(0.001)
    for link in links():  # measure the run, not the start-up
        link.longest_wait = 0.0
    for i in range(n):
        due = start + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        t0 = time.monotonic()
        try:
            with engine.entry(resource):
                pass
            passes.append(t0)
        except BlockError:
            blocks += 1
        slowest = max(slowest, time.monotonic() - t0)
    status = [s.__dict__ for s in cluster_metrics()]
    return {
        "passes": passes,
        "blocks": blocks,
        "slowest": slowest,
        "longest_wait": max(link.longest_wait for link in links()),
        "fallback": transitions.fallback,
        "recovery": transitions.recovery,
        "messages": transitions.messages,
        "status": status,
    }


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
