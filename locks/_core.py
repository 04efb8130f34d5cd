"""The I/O-free core shared by the sync (`locks`) and asyncio (`locks.aio`) fronts.

It owns everything that does not wait on a socket: tokens, key names, the scripts' arguments
and the reading of their replies, the Redlock quorum, validity and drift arithmetic on the
monotonic clock, the retry schedule with jitter and the renewal period. A front asks the core
for a :class:`Plan`, sends it, and hands the reply back; the core answers with the new state.

Clocks: every time here is ``time.monotonic()`` seconds (or the event loop's clock, which is
the same clock), never the wall clock, so a wall-clock step cannot stretch a lease.
"""

from __future__ import annotations

import math
import os
import random
import time
from dataclasses import dataclass
from typing import Any

from locks._scripts import ACQUIRE, EXTEND, FENCE_MAX, RELEASE, Script
from locks.errors import LockNotOwnedError

__all__ = [
    "CHANNEL",
    "Hold",
    "HoldView",
    "LockCore",
    "Plan",
    "RedlockCore",
    "check_timeout",
    "default_node_timeout",
    "drift",
    "fence_key",
    "lock_key",
    "new_token",
    "node_timeout_for",
    "quorum",
]

#: Pub/sub channel every release is announced on; the message is "<origin> <lock key>".
CHANNEL = "lock:released"
#: Redis expires keys with about 1 ms precision, plus 1 ms minimum (the Redlock reference client).
DRIFT_FLOOR = 0.002


def new_token() -> str:
    """A random token, unique per acquisition (20 bytes of os.urandom, as the Redlock page says)."""
    return os.urandom(20).hex()


def lock_key(name: str) -> str:
    """The key of a lock (the braces, a Cluster hash tag, keep it in its fence's slot)."""
    return f"lock:{{{name}}}"


def fence_key(name: str) -> str:
    """The key of the fencing counter of a lock name."""
    return f"lock:{{{name}}}:fence"


def quorum(n: int) -> int:
    """The Redlock majority of ``n`` masters."""
    return n // 2 + 1


def drift(ttl: float, drift_factor: float) -> float:
    """Allowed clock drift for a lease of ``ttl`` seconds: ``ttl * drift_factor + 2 ms``."""
    return ttl * drift_factor + DRIFT_FLOOR


def default_node_timeout(ttl: float) -> float:
    """Per-master wait of a Redlock round: small against the ttl (1 %), within 20-100 ms."""
    return min(0.1, max(0.02, ttl * 0.01))


def node_timeout_for(ttl: float, node_timeout: float | None) -> float:
    """The per-master timeout: the default for ``ttl``, or a given value > 0."""
    if node_timeout is None:
        return default_node_timeout(ttl)
    value = check_timeout(node_timeout, "node_timeout")
    if not value:
        raise ValueError("node_timeout: must be > 0")
    return float(value)


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _check_ttl(ttl: float) -> float:
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise ValueError(f"ttl: must be a finite number of seconds, got {ttl!r}")
    if ttl < 0.01:
        raise ValueError(f"ttl: must be >= 0.01 s, got {ttl!r}")
    return float(ttl)


def check_timeout(timeout: float | None, field: str = "timeout") -> float | None:
    """Validate a wait: None (forever) or a finite number of seconds >= 0."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float):
        raise ValueError(f"{field}: must be None or seconds, got {timeout!r}")
    if math.isnan(timeout) or timeout < 0:
        raise ValueError(f"{field}: must be >= 0, got {timeout!r}")
    return float(timeout)


@dataclass(slots=True)
class Hold:
    """One owner's hold on a lock: what the fronts keep between acquire and release."""

    token: str
    fencing_token: int
    #: Monotonic time after which the lease must be presumed gone: t0 + ttl - drift.
    deadline: float
    ttl: float
    count: int = 1
    lost: bool = False
    #: The asyncio task that owns this hold (None in the sync front, where the instance does).
    owner: Any = None
    #: A front's mutex serialising this hold's release with its renewal.
    guard: Any = None
    #: Redlock, asyncio: acquire commands still in flight when the quorum answered; a release or
    #: extend waits for them first so it cannot overtake them on their master.
    pending: Any = None

    def validity(self, now: float) -> float:
        return 0.0 if self.lost else max(0.0, self.deadline - now)


@dataclass(frozen=True, slots=True)
class Plan:
    """One script call: what to send (the front adds EVALSHA and the key count)."""

    script: Script
    keys: tuple[str, ...]
    args: tuple[str | int, ...]


def _as_int(value: Any) -> int:
    return int(value)


class HoldView:
    """The read-only face every lock shares: name, ttl and the owner's current hold.

    A front supplies ``_core`` and ``_current_hold()`` (the instance's hold in ``locks``,
    the calling task's in ``locks.aio``).
    """

    _core: Any  # LockCore or RedlockCore

    def _current_hold(self) -> Hold | None:
        raise NotImplementedError

    @property
    def name(self) -> str:
        return self._core.name

    @property
    def ttl(self) -> float:
        return self._core.ttl

    @property
    def token(self) -> str | None:
        """The owner's random token, or None when it holds nothing."""
        hold = self._current_hold()
        return hold.token if hold is not None else None

    @property
    def fencing_token(self) -> int | None:
        """The fencing token of the owner's acquisition, or None when it holds nothing."""
        hold = self._current_hold()
        return hold.fencing_token if hold is not None else None

    @property
    def validity(self) -> float:
        """Seconds left before the lease must be presumed gone: ttl - elapsed - drift
        (0.0 when not held)."""
        hold = self._current_hold()
        return hold.validity(time.monotonic()) if hold is not None else 0.0


class LockCore:
    """Arguments and reply reading for one lock name on one Redis (or each Redlock master)."""

    __slots__ = ("drift", "drift_factor", "fence", "key", "name", "reentrant", "ttl", "ttl_ms")

    def __init__(
        self, name: str, *, ttl: float, reentrant: bool = False, drift_factor: float = 0.01
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: must be a non-empty string, got {name!r}")
        if not 0 <= drift_factor < 0.5:
            raise ValueError(f"drift_factor: must be in [0, 0.5), got {drift_factor!r}")
        self.name = name
        self.key = lock_key(name)
        self.fence = fence_key(name)
        self.ttl = _check_ttl(ttl)
        self.ttl_ms = _ms(self.ttl)
        self.reentrant = bool(reentrant)
        self.drift_factor = float(drift_factor)
        self.drift = drift(self.ttl, self.drift_factor)

    # -- acquire ---------------------------------------------------------------------------
    def acquire_plan(self, token: str) -> Plan:
        return Plan(ACQUIRE, (self.key, self.fence), (token, self.ttl_ms, self._flag()))

    def on_acquire(
        self, reply: Any, token: str, t0: float, hold: Hold | None
    ) -> tuple[Hold | None, float]:
        """Read an acquire reply sent at ``t0``.

        :returns: ``(hold, 0.0)`` when held (a new hold, or ``hold`` with its count raised when a
            reentrant owner entered again), else ``(None, seconds the holder has left)``.
        """
        value = _as_int(reply)
        if value > 0:
            return Hold(token, value, t0 + self.ttl - self.drift, self.ttl), 0.0
        if value == 0 and hold is not None:
            hold.count += 1
            hold.deadline = t0 + self.ttl - self.drift
            return hold, 0.0
        return None, self.pttl_seconds(-value - 3)

    def pttl_seconds(self, pttl_ms: int) -> float:
        """How long a loser may sleep before the holder's lease can have run out."""
        if pttl_ms == -2:  # the key vanished between the SET and the PTTL: try again now
            return 0.0
        if pttl_ms < 0:  # a key without expiry (not ours): look again after one ttl
            return self.ttl
        return pttl_ms / 1000.0 + 0.001

    # -- release ---------------------------------------------------------------------------
    def release_plan(self, hold: Hold, origin: str) -> Plan:
        # "<origin> <release id> <key>": the id lets a listener drop the echoes of one release
        # published by several Redlock masters; the key comes last as it may contain spaces.
        message = f"{origin} {hold.token[:12]} {self.key}"
        return Plan(RELEASE, (self.key,), (hold.token, self._flag(), CHANNEL, message))

    def on_release(self, reply: Any, hold: Hold) -> bool:
        """:returns: True when the lock is now free, False when reentrant holds are left.

        :raises LockNotOwnedError: when this owner did not hold the lock.
        """
        status = _as_int(reply)
        if status == 0:
            raise self.not_owned("release")
        if status == 2:
            hold.count -= 1
            return False
        hold.count = 0
        return True

    # -- extend ----------------------------------------------------------------------------
    def extend_ttl(self, ttl: float | None) -> float:
        return self.ttl if ttl is None else _check_ttl(ttl)

    def extend_plan(self, hold: Hold, ttl: float) -> Plan:
        return Plan(EXTEND, (self.key,), (hold.token, _ms(ttl), self._flag()))

    def on_extend(self, reply: Any, hold: Hold, t0: float, ttl: float) -> None:
        """:raises LockNotOwnedError: when this owner did not hold the lock."""
        if _as_int(reply) != 1:
            hold.lost = True
            raise self.not_owned("extend")
        hold.ttl = ttl
        hold.deadline = t0 + ttl - drift(ttl, self.drift_factor)

    # -- helpers ---------------------------------------------------------------------------
    def owned_command(self, hold: Hold) -> tuple[str, ...]:
        if self.reentrant:
            return ("HEXISTS", self.key, hold.token)
        return ("GET", self.key)

    def on_owned(self, reply: Any, hold: Hold) -> bool:
        if self.reentrant:
            return bool(_as_int(reply))
        if isinstance(reply, bytes):
            reply = reply.decode()
        return reply == hold.token

    def on_owned_reply(self, reply: Any, hold: Hold) -> bool:
        """Like :meth:`on_owned` for a fan-out reply that may be an exception or None."""
        if reply is None or isinstance(reply, BaseException):
            return False
        return self.on_owned(reply, hold)

    def renew_period(self, hold: Hold) -> float:
        """Renew at a third of the ttl (Redisson's watchdog period)."""
        return hold.ttl / 3.0

    def wait_bound(self, pttl: float, remaining: float | None) -> float:
        """Sleep no longer than the holder's lease or the caller's remaining wait."""
        return pttl if remaining is None else max(0.0, min(pttl, remaining))

    def not_owned(self, action: str) -> LockNotOwnedError:
        return LockNotOwnedError(
            f"{self.name}: cannot {action}, this owner does not hold the lock", self.name
        )

    def _flag(self) -> str:
        return "1" if self.reentrant else "0"


class RedlockCore(LockCore):
    """Quorum, validity and retry arithmetic of Redlock over ``n`` masters."""

    __slots__ = ("n", "quorum", "retry_count", "retry_delay")

    def __init__(
        self,
        name: str,
        n: int,
        *,
        ttl: float,
        retry_delay: float = 0.2,
        retry_count: int | None = None,
        drift_factor: float = 0.01,
    ) -> None:
        super().__init__(name, ttl=ttl, drift_factor=drift_factor)
        if n < 1:
            raise ValueError("clients: Redlock needs at least one master")
        if not retry_delay >= 0:
            raise ValueError(f"retry_delay: must be >= 0, got {retry_delay!r}")
        if retry_count is not None and retry_count < 0:
            raise ValueError(f"retry_count: must be None or >= 0, got {retry_count!r}")
        self.n = n
        self.quorum = quorum(n)
        self.retry_delay = float(retry_delay)
        self.retry_count = retry_count

    def read_acquire_round(self, replies: list[Any]) -> tuple[list[int], list[int], float]:
        """Split a round of acquire replies (a reply, an exception or None for a timeout).

        :returns: (indices that granted, their fencing counters, the longest loser wait in s).
        """
        granted, fences, wait = [], [], 0.0
        for i, reply in enumerate(replies):
            if type(reply) is not int:  # None (no answer) or an exception
                continue
            if reply > 0:
                granted.append(i)
                fences.append(reply)
            else:
                wait = max(wait, self.pttl_seconds(-reply - 3))
        return granted, fences, wait

    def round_done(self, replies: list[Any]) -> bool:
        """True when a round can end early: a quorum granted, or no quorum can form any more."""
        ok = failed = 0
        for r in replies:
            if r is None:
                continue
            if type(r) is int and r > 0:
                ok += 1
            else:  # refused, or an error
                failed += 1
        return ok >= self.quorum or self.n - failed < self.quorum

    def refused(self, reply: Any) -> bool:
        """True for an acquire reply that says another owner holds the key on that master."""
        return type(reply) is int and reply < 0

    def count_ok(self, replies: list[Any], wanted: int | None = None) -> int:
        """How many replies of a release/extend/fence round said yes."""
        n = 0
        for r in replies:
            if r is None or isinstance(r, BaseException):
                continue
            if wanted is None:
                n += 1 if _as_int(r) == 1 else 0
            else:
                n += 1 if _as_int(r) >= wanted else 0
        return n

    def fence_plan(self, token: int) -> Plan:
        return Plan(FENCE_MAX, (self.fence,), (token,))

    def validity_after(self, t0: float, now: float, ttl: float | None = None) -> float:
        """Redlock's validity: ttl - elapsed - drift (negative when the lease is already gone)."""
        ttl = self.ttl if ttl is None else ttl
        return ttl - (now - t0) - drift(ttl, self.drift_factor)

    def retry_wait(self, remaining: float | None) -> float:
        """A jittered pause between rounds, so contenders do not retry in lockstep."""
        delay = random.uniform(self.retry_delay / 2, self.retry_delay)
        return delay if remaining is None else max(0.0, min(delay, remaining))

    def rounds_exhausted(self, rounds: int) -> bool:
        return self.retry_count is not None and rounds > self.retry_count
