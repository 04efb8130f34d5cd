"""Timers and delay queues (SPEC section 2).

- :class:`TimingWheel` is a hierarchical timing wheel (Kafka's design: overflow wheels created
  on demand, timers cascading down as time passes). It is a pure data structure driven by the
  caller's clock: ``schedule``/``schedule_at`` return a handle whose ``cancel()`` is O(1),
  ``advance(now_ms)`` returns the payloads now due (by deadline, ties in scheduling order) and
  ``next_deadline()`` tells a driver how long it may sleep. It is compiled with Cython from one
  typed source; ``GUARD_PURE=1`` selects the pure-Python twin (``timewheel.wheel.IMPLEMENTATION``
  says which one runs). Cost: O(levels) schedule, O(1) cancel, amortized O(1) per fired timer,
  about 40 bytes per pending timer besides its payload and handle.
- ``timewheel.drivers`` runs callbacks at their deadlines, on a thread or on an asyncio loop,
  sleeping until the next deadline rather than ticking.
- :class:`DelayQueue` is a delay queue on a wheel, in memory or durable in SQLite (WAL mode,
  group commit): put/cancel/get/aget/ack/nack, at-least-once with ``ack_timeout``, and only
  tasks due within ``memory_horizon`` held in memory.
- :class:`RedisDelayQueue` offers the same interface over Redis, shared by many processes.
- :class:`Task` is one delivery of a task.

Concurrency: a wheel is not thread-safe (the drivers and queues lock around it); the queues
are safe to share between threads, and ``aget``/``async for`` never block the event loop.
"""

from __future__ import annotations

from timewheel.delay_queue import DelayQueue
from timewheel.redis_queue import RedisDelayQueue
from timewheel.task import Task
from timewheel.wheel import TimingWheel

__all__ = ["TimingWheel", "DelayQueue", "RedisDelayQueue", "Task"]
