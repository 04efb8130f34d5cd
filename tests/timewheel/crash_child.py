"""Child process for the crash tests: puts or consumes until it is killed with SIGKILL.

Usage: python -m tests.timewheel.crash_child put|consume PATH THREADS
Prints one line per durable step ("put ID" after put returned, "acked ID" after ack returned).
"""

from __future__ import annotations

import sys
import threading

from timewheel import DelayQueue


def main() -> None:
    mode, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
    q = DelayQueue(path, fsync="always", ack_timeout=60)
    out = threading.Lock()

    def say(line: str) -> None:
        with out:
            sys.stdout.write(line + "\n")
            sys.stdout.flush()

    def produce(n: int) -> None:
        i = 0
        while True:
            say("put " + q.put(b"%d-%d" % (n, i)))
            i += 1

    def consume() -> None:
        while True:
            task = q.get(timeout=30)
            if task is None:
                return
            task.ack()
            say("acked " + task.id)

    work = [
        threading.Thread(
            target=produce if mode == "put" else consume, args=(n,) if mode == "put" else ()
        )
        for n in range(threads)
    ]
    say("ready")
    for t in work:
        t.start()
    for t in work:
        t.join()


if __name__ == "__main__":
    main()
