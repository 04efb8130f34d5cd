"""Upstream selection behind one small interface, ``Balancer.pick(key)``.

Policies (``lb:`` in the ``sidecar:`` section):

- ``round_robin``: smooth weighted round robin, as nginx does it. Every pick adds each
  instance's effective weight to its running total, takes the instance with the largest
  total and subtracts the sum of weights from it. Weights 5:1:1 give ``a a b a c a a``
  rather than ``a a a a a b c``: the heavy instance's turns are spread out.
- ``weighted_random``: one uniform draw over the cumulative weights (Dubbo's
  RandomLoadBalance).
- ``least_active``: the instance with the fewest requests in flight; ties go to a weighted
  random draw among the tied instances (Dubbo's LeastActiveLoadBalance).
- ``consistent_hash``: a hash ring with ``VNODES`` points per unit of weight per instance;
  a request goes to the first point clockwise of its key's hash. Points depend only on the
  instance's own URL and weight, so when one of N instances leaves only its own keys
  (about 1/N) move. The key comes from ``hash_key`` (``header:NAME``, ``query:NAME``,
  ``client_ip``; the client address by default); a request without one is balanced round
  robin.

Every policy honours slow start and passive health (``ext.sidecar.health``): ejected
instances are skipped and ramping ones count with their reduced effective weight. For
``consistent_hash`` a ramping instance keeps a share of its keys equal to its ramp (chosen
by a second hash of the key, so the same keys move back first); the rest go on clockwise.

A reload builds a new balancer with ``previous=`` the old one: instances whose URL stays
keep their state (in flight, ejection, ramp); new ones start a slow-start ramp.
"""

from __future__ import annotations

import bisect
import hashlib
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ext.sidecar.config import Param, Upstream
from ext.sidecar.health import Host, OutlierPolicy

__all__ = [
    "POLICIES",
    "VNODES",
    "Balancer",
    "ConsistentHash",
    "LeastActive",
    "RoundRobin",
    "WeightedRandom",
    "hash64",
    "make_balancer",
]

VNODES = 160  # ring points per unit of weight (ketama's figure)
_MAX_POINTS = 10_000  # per instance, whatever its weight
_REFRESH_SEC = 0.001  # effective weights are recomputed at most this often while ramping


def hash64(text: str) -> int:
    """A stable 64-bit hash (the same in every process, unlike ``hash()``)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big")


class Balancer:
    """Chooses one upstream per request.

    ``pick`` gets a callable that extracts the request's hash key (only called by policies
    with ``needs_key``); ``on_start``/``on_done`` track in-flight requests and failures, and
    are only called when ``tracks_requests`` is True.

    :param upstreams: the configured instances, in file order.
    :param hash_key: where ``consistent_hash`` reads its key (None: the client address).
    :param slow_start_sec: ramp length for new and recovered instances (0: no ramp).
    :param outlier: passive-health policy (None: the defaults).
    :param clock: monotonic seconds; tests pass their own.
    :param previous: the balancer this one replaces on reload.
    :param rng: random source for the random policies.
    :raises ValueError: when ``upstreams`` is empty.
    """

    needs_key = False

    def __init__(
        self,
        upstreams: Sequence[Upstream],
        *,
        hash_key: Param | None = None,
        slow_start_sec: float = 0.0,
        outlier: OutlierPolicy | None = None,
        clock: Callable[[], float] = time.monotonic,
        previous: Balancer | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        if not upstreams:
            raise ValueError("a balancer needs at least one upstream")
        self.upstreams = tuple(upstreams)
        self.hash_key = hash_key
        self.slow_start_sec = float(slow_start_sec)
        self.outlier = outlier if outlier is not None else OutlierPolicy()
        self.clock = clock
        self.rng = rng if rng is not None else random.Random()
        now = clock()
        old: dict[str, Host] = {} if previous is None else previous._by_url
        ramp_new = previous is not None and self.slow_start_sec > 0
        hosts = []
        for up in self.upstreams:
            host = old.get(up.url)
            if host is None:
                host = Host(up, ramp_from=now if ramp_new else None)
            else:
                host.upstream = up  # a weight may have changed
            hosts.append(host)
        self.hosts: tuple[Host, ...] = tuple(hosts)
        self._by_url: dict[str, Host] = {h.upstream.url: h for h in hosts}
        self._max_ejected = self.outlier.max_ejected(len(hosts))
        self.tracks_requests = self._max_ejected > 0 or type(self) is LeastActive
        self._entries: list[tuple[Host, float]] = []
        self._total = 0.0
        self._steady = False  # True while no instance ramps or is ejected: weights fixed
        self._dirty = True  # an ejection happened: recompute before the next pick
        self._refreshed_at = float("-inf")

    # -- weights in force ---------------------------------------------------------------
    def _refresh(self, now: float) -> None:
        """Recompute the available instances and their effective weights."""
        entries = []
        steady = True
        for h in self.hosts:
            if h.ejected_until is not None:
                if now < h.ejected_until:
                    steady = False
                    continue
                h.readmit(now)
            fraction = h.ramp(now, self.slow_start_sec)
            if fraction < 1.0:
                steady = False
            if h.weight > 0:
                entries.append((h, h.weight * fraction))
        if not entries:
            # Every weight is 0, or (after a reload shrank the list) every instance is out:
            # serving somewhere beats refusing everything.
            alive = [h for h in self.hosts if h.ejected_until is None] or list(self.hosts)
            entries = [(h, 1.0) for h in alive]
        self._entries = entries
        self._total = sum(w for _, w in entries)
        self._steady = steady
        self._dirty = False
        self._refreshed_at = now
        self._rebuilt()

    def _rebuilt(self) -> None:
        """Hook for policies that derive tables from the entries."""

    def effective_weights(self) -> dict[str, float]:
        """URL -> effective weight now (0 for an ejected instance)."""
        self._refresh(self.clock())
        weights = dict.fromkeys(self._by_url, 0.0)
        for h, w in self._entries:
            weights[h.upstream.url] = w
        return weights

    # -- the interface the exchange uses --------------------------------------------------
    def pick(self, key: Callable[[], str | None] | None = None) -> Upstream:
        """Return the upstream for the next request."""
        if not self._steady:
            now = self.clock()
            # while ramping, weights move by at most 1/slow_start_sec per second: one
            # recomputation per millisecond is as good as one per pick, and much cheaper
            if self._dirty or now - self._refreshed_at >= _REFRESH_SEC:
                self._refresh(now)
        entries = self._entries
        # one instance in force: every policy would choose it (and needs no key)
        host = entries[0][0] if len(entries) == 1 else self._choose(key)
        host.picks += 1
        return host.upstream

    def _choose(self, key: Callable[[], str | None] | None) -> Host:
        raise NotImplementedError

    def on_start(self, upstream: Upstream) -> None:
        """A request to ``upstream`` started."""
        host = self._by_url.get(upstream.url)
        if host is not None:
            host.active += 1

    def on_done(self, upstream: Upstream, failed: bool) -> None:
        """A request to ``upstream`` ended; ``failed`` for connect errors, timeouts and 5xx."""
        host = self._by_url.get(upstream.url)
        if host is None:
            return  # removed by a reload while the request ran
        if host.active > 0:
            host.active -= 1
        if not failed:
            host.failures = 0
            return
        host.failures += 1
        host.failures_total += 1
        policy = self.outlier
        if (
            policy.consecutive_failures
            and host.failures >= policy.consecutive_failures
            and host.ejected_until is None
            and sum(h.ejected_until is not None for h in self.hosts) < self._max_ejected
        ):
            host.eject(self.clock(), policy)
            self._steady = False
            self._dirty = True

    def snapshot(self) -> list[dict[str, Any]]:
        """Per instance: weights, picks, in flight, failures and ejection, for dashboards."""
        now = self.clock()
        weights = self.effective_weights()
        return [
            {
                "url": h.upstream.url,
                "weight": h.weight,
                "effective_weight": weights[h.upstream.url],
                "picks": h.picks,
                "active": h.active,
                "failures": h.failures_total,
                "ejections": h.ejections,
                "ejected_for_sec": 0.0
                if h.ejected_until is None
                else round(h.ejected_until - now, 3),
                "ejection_sec": 0.0
                if h.ejected_until is None
                else min(
                    self.outlier.max_ejection_sec, self.outlier.base_ejection_sec * h.ejections
                ),
            }
            for h in self.hosts
        ]


class RoundRobin(Balancer):
    """Smooth weighted round robin (nginx); equal weights take the list order."""

    def _choose(self, key: Callable[[], str | None] | None) -> Host:
        total = self._total
        best: Host | None = None
        best_current = 0.0
        for h, w in self._entries:
            current = h.current = h.current + w
            if best is None or current > best_current:
                best, best_current = h, current
        assert best is not None
        best.current = best_current - total
        return best


class WeightedRandom(Balancer):
    """One draw over the cumulative effective weights."""

    def _rebuilt(self) -> None:
        cumulative = []
        running = 0.0
        for _, w in self._entries:
            running += w
            cumulative.append(running)
        self._cumulative = cumulative

    def _choose(self, key: Callable[[], str | None] | None) -> Host:
        i = bisect.bisect_right(self._cumulative, self.rng.random() * self._total)
        return self._entries[min(i, len(self._entries) - 1)][0]


class LeastActive(Balancer):
    """Fewest requests in flight; a weighted random draw breaks ties."""

    def _choose(self, key: Callable[[], str | None] | None) -> Host:
        least = min(h.active for h, _ in self._entries)
        tied = [(h, w) for h, w in self._entries if h.active == least]
        if len(tied) == 1:
            return tied[0][0]
        total = sum(w for _, w in tied)
        if total <= 0:
            return self.rng.choice(tied)[0]
        point = self.rng.random() * total
        for h, w in tied:
            point -= w
            if point < 0:
                return h
        return tied[-1][0]


class ConsistentHash(RoundRobin):
    """A hash ring with virtual nodes; keyless requests fall back to round robin."""

    needs_key = True

    def __init__(self, upstreams: Sequence[Upstream], **options: Any) -> None:
        super().__init__(upstreams, **options)
        points: list[tuple[int, int]] = []
        for index, h in enumerate(self.hosts):
            if h.weight <= 0:
                continue
            count = min(_MAX_POINTS, max(1, round(VNODES * h.weight)))
            url = h.upstream.url
            points.extend((hash64(f"{url}#{i}"), index) for i in range(count))
        points.sort()
        self._ring = [p for p, _ in points]
        self._owners = [i for _, i in points]

    def _choose(self, key: Callable[[], str | None] | None) -> Host:
        text = key() if key is not None else None
        if not text or not self._ring:
            return super()._choose(None)
        digest = hash64(text)
        share = (digest & 0xFFFF) / 65536.0  # second, independent part of the hash
        now = self.clock()
        hosts = self.hosts
        owners = self._owners
        n = len(owners)
        start = bisect.bisect_left(self._ring, digest)
        refused: set[int] = set()
        fallback: Host | None = None
        for step in range(n):
            index = owners[(start + step) % n]
            if index in refused:
                continue
            h = hosts[index]
            if h.ejected_until is not None and now < h.ejected_until:
                refused.add(index)
                continue
            if fallback is None:
                fallback = h
            if share < h.ramp(now, self.slow_start_sec):
                return h
            refused.add(index)
            if len(refused) == len(hosts):
                break
        return fallback if fallback is not None else super()._choose(None)


POLICIES: dict[str, type[Balancer]] = {
    "round_robin": RoundRobin,
    "weighted_random": WeightedRandom,
    "least_active": LeastActive,
    "consistent_hash": ConsistentHash,
}


def make_balancer(policy: str, upstreams: Sequence[Upstream], **options: Any) -> Balancer:
    """Build the balancer for ``policy``; ``options`` as for ``Balancer``.

    :raises ValueError: when the policy is not available in this build.
    """
    try:
        cls = POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"load-balancing policy {policy!r} is not available; use one of {', '.join(POLICIES)}"
        ) from None
    return cls(upstreams, **options)
