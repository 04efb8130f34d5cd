"""Flow controllers and the per-resource flow check (pure-Python truth of the twin).

Each controller answers ``can_pass(node, acquire, now)`` with a float: ``-1.0`` blocks,
``0.0`` passes now, ``> 0`` passes after waiting that many milliseconds. Semantics follow
Sentinel 1.8 (shared/REFERENCE.md Part A section 3) with two fixes the SPEC asks for:

* warm-up starts fully cold whatever the clock's starting value (Sentinel starts warm when
  its millisecond clock is near zero, because its first refill sees no elapsed time);
* the rate limiters keep the next free time as a float, so fractional counts and counts
  above 1000/s space requests exactly (Sentinel's millisecond rounding bug, #259/#1615),
  and the first request a new limiter sees always passes at once.

Argument C types are declared in ``_controllers_c.pxd``; numeric arguments are left
unannotated here because a Python ``int`` annotation would contradict them.
"""

from __future__ import annotations

import math
from typing import Any

import cython

from guard.errors import FlowBlocked

if cython.compiled:
    from cython.cimports.guard._chain_c import Check, Entry, Resource, block, new_error, wait
    from cython.cimports.guard.stat._window_c import StatNode
else:
    from guard.chain import Check, Entry, Resource, block, new_error, wait
    from guard.stat.window import StatNode

__all__ = [
    "Controller",
    "DefaultController",
    "FlowCheck",
    "FlowRuleState",
    "RateLimiterController",
    "WarmUpController",
    "WarmUpRateLimiterController",
]

BLOCK = -1.0
PASS = 0  # the window's pass field
_NEVER = -1.0e300  # "no request passed yet" for the rate limiters

# How a rule picks the node it measures (Sentinel's limitApp).
LIMIT_DEFAULT = 0
LIMIT_OTHER = 1
LIMIT_ORIGIN = 2
# Strategy.
DIRECT = 0
RELATE = 1
CHAIN = 2


class Controller:
    """Base of the flow controllers (its methods are overridden)."""

    def can_pass(self, node: StatNode, acquire, now) -> float:
        return 0.0

    def retry_after(self, node: StatNode, now) -> Any:
        return None


class DefaultController(Controller):
    """Reject: block iff current + acquire > count (QPS or concurrency)."""

    def __init__(self, count: float, concurrency: bool) -> None:
        self.count = count
        self.concurrency = concurrency

    def can_pass(self, node: StatNode, acquire, now) -> float:
        current: cython.longlong
        if self.concurrency:
            current = node.concurrency
        else:
            current = int(node.pass_qps(now))
        if current + acquire > self.count:
            return BLOCK
        return 0.0

    def retry_after(self, node: StatNode, now) -> Any:
        if self.concurrency or self.count <= 0:
            return None  # concurrency frees when calls end; a zero count never frees
        return _time_to_admit(node, now, self.count)


class WarmUpController(Controller):
    """Warm-up (Guava's SmoothWarmingUp over windows), starting cold."""

    def __init__(self, count: float, warm_up_sec: float, cold_factor: int) -> None:
        self.count = count
        self.cold_factor = cold_factor
        # Integer arithmetic where Sentinel truncates, so admission matches it exactly.
        self.warning_token = int(warm_up_sec * count) // (cold_factor - 1)
        self.max_token = self.warning_token + int(2 * warm_up_sec * count / (1.0 + cold_factor))
        span = self.max_token - self.warning_token
        self.slope = (cold_factor - 1.0) / count / span if count > 0 and span > 0 else 0.0
        self.stored_tokens = self.max_token
        self.last_filled = -1
        self.started = False

    def sync_token(self, previous_qps, now) -> None:
        current: cython.longlong = now - now % 1000
        if current > now:  # C's remainder of a time below zero (a ManualClock may start there)
            current -= 1000
        if not self.started:
            # Start cold: full of tokens, as if idle forever, whatever the clock reads.
            self.started = True
            self.last_filled = current
            self.stored_tokens = max(0, self.max_token - previous_qps)
            return
        if current <= self.last_filled:
            return
        old: cython.longlong = self.stored_tokens
        new: cython.longlong = old
        refill: cython.bint = False
        if old < self.warning_token or (
            old > self.warning_token and previous_qps < int(self.count) // self.cold_factor
        ):
            refill = True
        if refill:
            new = int(old + (current - self.last_filled) * self.count / 1000.0)
        new = min(new, self.max_token)
        new -= previous_qps
        self.stored_tokens = new if new > 0 else 0
        self.last_filled = current

    def allowed_qps(self) -> float:
        """The QPS the current token level admits."""
        rest: cython.longlong = self.stored_tokens
        if rest >= self.warning_token and self.count > 0:
            above = rest - self.warning_token
            return math.nextafter(1.0 / (above * self.slope + 1.0 / self.count), math.inf)
        return self.count

    def can_pass(self, node: StatNode, acquire, now) -> float:
        pass_qps: cython.longlong = int(node.pass_qps(now))
        self.sync_token(node.previous_pass_qps(now), now)
        if pass_qps + acquire <= self.allowed_qps():
            return 0.0
        return BLOCK

    def retry_after(self, node: StatNode, now) -> Any:
        if self.count <= 0:
            return None
        return _time_to_admit(node, now, self.allowed_qps())


def _time_to_admit(node: StatNode, now: Any, allowed: float) -> float:
    """Seconds until enough passes leave the window for one more to fit under ``allowed``."""
    current: cython.longlong = node.second.sum(now, PASS)
    amount: cython.longlong = math.ceil(current + 1 - allowed)
    return node.second.time_to_free(now, PASS, amount) / 1000.0


class RateLimiterController(Controller):
    """Leaky bucket: requests spaced ``1000 * acquire / count`` ms apart, queue bounded."""

    def __init__(self, count: float, max_queue_ms: int) -> None:
        self.count = count
        self.max_queue_ms = max_queue_ms
        self.latest_passed = _NEVER
        self.refused_at = 0.0

    def space(self, cost, now) -> float:
        expected = self.latest_passed + cost
        if expected <= now:
            self.latest_passed = now
            return 0.0
        wait = expected - now
        if wait > self.max_queue_ms:
            self.refused_at = expected  # when the refused request would have passed
            return BLOCK
        self.latest_passed = expected
        return wait

    def can_pass(self, node: StatNode, acquire, now) -> float:
        if acquire <= 0:
            return 0.0
        if self.count <= 0:
            return BLOCK
        return self.space(1000.0 * acquire / self.count, now)

    def retry_after(self, node: StatNode, now) -> Any:
        if self.count <= 0:
            return None
        # A retry fits once its own passing time is within the queue bound.
        over = self.refused_at - now - self.max_queue_ms
        return min(max(over, 0.0), 1000.0) / 1000.0


class WarmUpRateLimiterController(WarmUpController):
    """Warm-up that spaces requests (leaky bucket) at the warming rate."""

    def __init__(self, count: float, warm_up_sec: float, cold_factor: int, max_queue_ms: int):
        super().__init__(count, warm_up_sec, cold_factor)
        self.limiter = RateLimiterController(count, max_queue_ms)

    def can_pass(self, node: StatNode, acquire, now) -> float:
        if acquire <= 0:
            return 0.0
        if self.count <= 0:
            return BLOCK
        self.sync_token(node.previous_pass_qps(now), now)
        limiter: RateLimiterController = self.limiter
        return limiter.space(1000.0 * acquire / self.allowed_qps(), now)

    def retry_after(self, node: StatNode, now) -> Any:
        limiter: RateLimiterController = self.limiter
        return limiter.retry_after(node, now)


class FlowRuleState:
    """One flow rule compiled for its resource: which node it measures and its controller."""

    def __init__(
        self,
        rule: Any,
        controller: Any,
        limit: int,
        strategy: int,
        ref_resource: Any = None,
        ref_name: Any = None,
        named_origins: frozenset[str] = frozenset(),
    ) -> None:
        self.rule = rule
        self.controller = controller
        self.limit = limit
        self.limit_app = rule.limit_app
        self.strategy = strategy
        self.ref_resource = ref_resource
        self.ref_name = ref_name
        self.named_origins = named_origins

    def select_node(self, e: Entry) -> Any:
        origin = e.origin if e.origin is not None else ""
        if self.limit == LIMIT_DEFAULT:
            if self.strategy == DIRECT:
                return e.res.node
        elif self.limit == LIMIT_ORIGIN:
            if origin != self.limit_app:
                return None
            if self.strategy == DIRECT:
                return e.origin_node
        else:
            if not origin or origin in self.named_origins:
                return None
            if self.strategy == DIRECT:
                return e.origin_node
        return self.reference_node(e)

    def reference_node(self, e: Entry) -> Any:
        if self.strategy == RELATE:
            ref: Resource = self.ref_resource
            return ref.node
        if e.context_name is not None and e.context_name == self.ref_name:
            return e.context_node
        return None


class FlowCheck(Check):
    """The flow slot's check for one resource: every rule must pass."""

    order = 4000

    def __init__(self, states: list[Any]) -> None:
        super().__init__()
        self.states = states
        self.uses_origin_node = any(state.limit != LIMIT_DEFAULT for state in states)
        self.uses_context_node = any(state.strategy == CHAIN for state in states)

    def check(self, e: Entry) -> Any:
        total: cython.double = 0.0
        result: cython.double
        now: cython.longlong = e.start
        for item in self.states:
            state: FlowRuleState = item
            node = state.select_node(e)
            if node is None:
                continue
            controller: Controller = state.controller
            result = controller.can_pass(node, e.count, now)
            if result < 0.0:
                retry = controller.retry_after(node, now)
                return block(new_error(FlowBlocked, e.res.name, state.rule, retry))
            total += result
        if total > 0.0:
            return wait(total)
        return None
