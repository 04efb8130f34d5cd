"""Consumer process for the RedisDelayQueue tests.

Usage: python -m tests.timewheel.redis_consumer PORT NAME SECONDS [noack]
Prints "got ID ATTEMPTS LATE_MS" per task, acking it unless "noack" is given; exits after
SECONDS without a task.
"""

from __future__ import annotations

import sys
import time

import redis

from timewheel import RedisDelayQueue


def main() -> None:
    port, name, idle = int(sys.argv[1]), sys.argv[2], float(sys.argv[3])
    ack = "noack" not in sys.argv[4:]
    client = redis.Redis(port=port)
    with RedisDelayQueue(client, name, ack_timeout=1.0, max_wait=30.0) as q:
        print("ready", flush=True)
        while (task := q.get(timeout=idle)) is not None:
            late_ms = (time.time() - task.deadline) * 1000
            print(f"got {task.id} {task.attempts} {late_ms:.1f}", flush=True)
            if ack:
                task.ack()
            else:
                return  # hold it and vanish: the queue must hand it to someone else


if __name__ == "__main__":
    main()
