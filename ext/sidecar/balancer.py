"""Upstream selection behind one small interface, ``Balancer.pick(request_key)``.

Only round robin lives here; other policies (weighted random, least active, consistent
hash, slow start) plug in as further ``Balancer`` subclasses registered in ``POLICIES``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ext.sidecar.config import Upstream

__all__ = ["Balancer", "POLICIES", "RoundRobin", "make_balancer"]


class Balancer:
    """Chooses one upstream per request.

    ``pick`` gets a callable that extracts the request's hash key (for policies that need
    one); ``on_start``/``on_done`` let policies track in-flight requests, and are only
    called when ``tracks_requests`` is True (saves two calls per request otherwise).
    """

    tracks_requests = False

    def __init__(self, upstreams: Sequence[Upstream], **options: Any) -> None:
        if not upstreams:
            raise ValueError("a balancer needs at least one upstream")
        self.upstreams = tuple(upstreams)

    def pick(self, key: Callable[[], str] | None = None) -> Upstream:
        """Return the upstream for the next request."""
        raise NotImplementedError

    def on_start(self, upstream: Upstream) -> None:
        """A request to ``upstream`` started."""

    def on_done(self, upstream: Upstream, failed: bool) -> None:
        """A request to ``upstream`` ended; ``failed`` for connect errors and timeouts."""


class RoundRobin(Balancer):
    """Each upstream in turn, in the order of the ``upstreams`` list."""

    def __init__(self, upstreams: Sequence[Upstream], **options: Any) -> None:
        super().__init__(upstreams, **options)
        self._next = 0

    def pick(self, key: Callable[[], str] | None = None) -> Upstream:
        ups = self.upstreams
        i = self._next
        self._next = (i + 1) % len(ups)
        return ups[i]


POLICIES: dict[str, type[Balancer]] = {"round_robin": RoundRobin}


def make_balancer(policy: str, upstreams: Sequence[Upstream], **options: Any) -> Balancer:
    """Build the balancer for ``policy``.

    :raises ValueError: when the policy is not available in this build.
    """
    try:
        cls = POLICIES[policy]
    except KeyError:
        raise ValueError(
            f"load-balancing policy {policy!r} is not available; use one of {', '.join(POLICIES)}"
        ) from None
    return cls(upstreams, **options)
