"""Task: one delivery of a delay-queue task, acked or nacked by the consumer."""

from __future__ import annotations

from typing import Any, Protocol

__all__ = ["Task", "TaskRecord"]


class _Acker(Protocol):
    def _ack(self, task: Task) -> bool: ...
    def _nack(self, task: Task, delay: float) -> bool: ...


class TaskRecord:
    """A task as a queue holds it in memory (internal)."""

    __slots__ = ("attempts", "deadline_ms", "deliveries", "handle", "id", "lease", "payload", "seq")

    def __init__(self, task_id: str, seq: int, deadline_ms: int, attempts: int, payload: bytes):
        self.id = task_id
        self.seq = seq
        self.deadline_ms = deadline_ms
        self.attempts = attempts
        self.payload = payload
        self.deliveries = 0  # deliveries by this process: tells a stale nack from a live one
        self.handle: Any = None  # the wheel timer of its deadline, while waiting
        self.lease: Any = None  # the wheel timer of its ack deadline, while in flight

    @classmethod
    def from_row(cls, row: tuple[int, int, int, bytes], id_tail: str) -> TaskRecord:
        seq, deadline_ms, attempts, payload = row
        return cls(f"{seq:x}-{id_tail}", seq, deadline_ms, attempts, payload)


class Task:
    """One delivery of a task.

    ``id`` (str), ``payload`` (bytes), ``deadline`` (epoch seconds it was due) and
    ``attempts`` (1 on the first delivery, +1 on each redelivery). Ack it when done; a task
    neither acked nor nacked within the queue's ``ack_timeout`` is delivered again.
    """

    __slots__ = ("_queue", "attempts", "deadline", "delivery", "id", "payload")

    def __init__(
        self,
        queue: _Acker,
        task_id: str,
        payload: bytes,
        deadline: float,
        attempts: int,
        delivery: Any = None,
    ) -> None:
        self._queue = queue
        self.id = task_id
        self.payload = payload
        self.deadline = deadline
        self.attempts = attempts
        self.delivery = delivery

    def ack(self) -> bool:
        """Mark the task done: it is deleted and never delivered again.

        :returns: False if the task was already acked or cancelled.
        """
        return self._queue._ack(self)

    def nack(self, delay: float = 0.0) -> bool:
        """Give the task back, to be delivered again after ``delay`` seconds.

        :returns: False if this delivery is no longer current (acked, or redelivered
            after ``ack_timeout``).
        """
        return self._queue._nack(self, delay)

    def __repr__(self) -> str:
        return f"Task(id={self.id!r}, deadline={self.deadline!r}, attempts={self.attempts})"
