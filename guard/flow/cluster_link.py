"""One process's connection to a cluster rule's Redis: the shared client and its refiller.

A *link* is shared by every cluster controller of the process that names the same URL
(and timeout): one ``redis.Redis`` (its connection pool serves the callers' threads) and
one daemon thread, the *refiller*, which runs the lease script for each controller when
its lease runs low, returns unused tokens, beats the heartbeat and, while Redis is down,
probes it every ``PROBE_INTERVAL`` until it answers again.

Health belongs to the link, not to a rule: when one call fails or outlives the timeout,
every controller of the link falls back to local enforcement at once, and all switch back
together when a probe succeeds.

Concurrency contract: controllers call ``healthy``, ``stalled``, ``call`` and ``wake`` from
any thread; the refiller thread owns the controller list under ``lock``. Nothing here
ever waits on Redis longer than the link's timeout (socket connect and read timeouts).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import weakref
from importlib import resources
from typing import Any, Protocol

import redis
from redis.exceptions import NoScriptError, RedisError

__all__ = [
    "PROBE_INTERVAL",
    "Link",
    "Script",
    "get_link",
    "reset_links",
    "use_client",
]

log = logging.getLogger("guard.flow.cluster")

#: Seconds between probes of a Redis that is down.
PROBE_INTERVAL = 0.1
#: Errors that mean "Redis did not answer in time or at all".
FAILURES = (RedisError, OSError)


class Script:
    """A Lua script shipped in ``guard/flow/_lua``: EVALSHA, reloading on NOSCRIPT.

    :param name: the file name, e.g. ``"cluster_acquire.lua"``.
    """

    def __init__(self, name: str) -> None:
        self.source = resources.files("guard.flow").joinpath("_lua", name).read_text("utf-8")
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        """Run on ``client`` (any redis-py client: standalone, Sentinel or Cluster)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            # A restarted or flushed server lost the script: EVAL runs and caches it.
            return client.eval(self.source, len(keys), *keys, *args)


class LinkUser(Protocol):
    """What the refiller needs from a controller."""

    def due_in(self, now: float) -> float: ...

    def refill(self, link: Link) -> None: ...

    def on_down(self) -> None: ...

    def on_up(self) -> None: ...


class Link:
    """A shared Redis client plus its refiller thread (see the module docstring).

    :param client: the redis-py client to use.
    :param timeout_ms: the longest any call may take before Redis counts as down.
    :param name: how logs name this Redis (its URL).
    :param check_elapsed: also count an answer that came later than the timeout as a
        failure (for clients supplied by the application, whose socket timeouts may be
        longer; our own clients time out in the socket).
    """

    def __init__(self, client: Any, timeout_ms: int, name: str, check_elapsed: bool = False):
        self.client = client
        self.check_elapsed = check_elapsed
        self.timeout = timeout_ms / 1000.0
        self.name = name
        self.healthy = True
        self.lock = threading.Lock()
        self._transition = threading.RLock()
        self.users: weakref.WeakSet[Any] = weakref.WeakSet()
        self.retiring: list[Any] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        # When the refiller's call began (monotonic seconds); 0.0 while it is idle.
        self.inflight_since = 0.0
        self.calls = 0
        self.failures = 0

    # -- controllers -------------------------------------------------------------------

    def attach(self, user: LinkUser) -> None:
        """Serve ``user`` from now on; starts the refiller if it is not running."""
        with self._transition:
            with self.lock:
                self.users.add(user)
                self._start_thread()
            if not self.healthy:
                user.on_down()
        self._wake.set()

    def _start_thread(self) -> None:
        # Under self.lock. Also revives the refiller in a forked child, where it is gone.
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._run, name=f"guard-cluster {self.name}", daemon=True
            )
            self._thread.start()

    def after_fork(self) -> None:
        """Reset locks and thread state in a forked child (its parent's threads are gone)."""
        self.lock = threading.Lock()
        self._transition = threading.RLock()
        self._wake = threading.Event()
        self._thread = None
        self.inflight_since = 0.0

    def retire(self, user: LinkUser) -> None:
        """Stop serving ``user``; the refiller gives its tokens back and unregisters it."""
        with self.lock:
            self.users.discard(user)
            self.retiring.append(user)
        self._wake.set()

    def wake(self) -> None:
        """Ask the refiller to look at the controllers now."""
        thread = self._thread
        if thread is None or not thread.is_alive():
            with self.lock:
                if self.users:
                    self._start_thread()
        self._wake.set()

    # -- health ------------------------------------------------------------------------

    def stalled(self, now: float) -> bool:
        """True if the refiller's current call has outlived the timeout.

        Only for clients supplied by the application: our own clients' sockets time out
        by themselves, and a refiller thread merely waiting for the CPU is no sign of a
        slow Redis.
        """
        since = self.inflight_since
        return self.check_elapsed and since > 0.0 and now - since > self.timeout

    def mark_down(self, reason: object) -> None:
        """Switch every controller of this link to local enforcement (once)."""
        with self._transition:  # a transition completes before the next one starts
            with self.lock:
                if not self.healthy:
                    return
                self.healthy = False
                users = list(self.users)
            log.warning(
                "cluster flow: Redis %s unavailable (%s); enforcing locally", self.name, reason
            )
            for user in users:
                user.on_down()
        self._wake.set()

    def mark_up(self) -> None:
        """Switch every controller back to the shared window (once)."""
        with self._transition:
            with self.lock:
                if self.healthy:
                    return
                self.healthy = True
                users = list(self.users)
            log.warning("cluster flow: Redis %s answers again; enforcing cluster-wide", self.name)
            for user in users:
                user.on_up()
        self._wake.set()

    def call(self, script: Script, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` now on the caller's thread.

        :raises RedisError: or ``OSError`` when Redis failed or timed out; the link is
            already marked down then.
        """
        self.calls += 1
        started = time.monotonic()
        try:
            reply = script(self.client, keys, args)
        except FAILURES as exc:
            self.failures += 1
            self.mark_down(exc)
            raise
        if self.check_elapsed and time.monotonic() - started > self.timeout:
            # A client supplied with a longer timeout answered late: as bad as no answer.
            self.failures += 1
            self.mark_down(f"answer slower than {self.timeout * 1000:.0f} ms")
        return reply

    # -- the refiller --------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.clear()  # before reading: a wake from now on is not lost
            with self.lock:
                users = list(self.users)
                retiring, self.retiring = self.retiring, []
                if not users and not retiring:
                    self._thread = None
                    return
            for user in retiring:
                if self.healthy:
                    self._guarded(user.refill)
            if not self.healthy:
                self._probe()
                self._wake.wait(PROBE_INTERVAL)
                continue
            wait = 1.0
            for user in users:
                now = time.monotonic()
                due = user.due_in(now)
                if due <= 0.0:
                    self._guarded(user.refill)
                    if not self.healthy:
                        break
                    due = user.due_in(time.monotonic())
                wait = min(wait, max(due, 0.0))
            if wait > 0.0:
                self._wake.wait(wait)

    def _guarded(self, refill: Any) -> None:
        self.inflight_since = time.monotonic()
        try:
            refill(self)
        except FAILURES:
            pass  # ``call`` has marked the link down
        except Exception:  # a bug must not kill the refiller of every rule
            log.exception("cluster flow: refill failed")
        finally:
            self.inflight_since = 0.0

    def _probe(self) -> None:
        self.inflight_since = time.monotonic()
        try:
            self.client.ping()
        except FAILURES:
            return
        finally:
            self.inflight_since = 0.0
        self.mark_up()


_links: dict[tuple[str, int], Link] = {}
_clients: dict[str, Any] = {}
_registry_lock = threading.Lock()


def use_client(url: str, client: Any) -> None:
    """Make cluster rules whose ``url`` is ``url`` use ``client``.

    For Redis Cluster (``redis.cluster.RedisCluster``) or a Sentinel-managed master
    (``Sentinel(...).master_for(...)``): the rule file names a URL, the application
    supplies the client. Set its ``socket_timeout`` to the rules' ``timeout_ms``.
    Controllers created afterwards use it.

    :param url: the URL exactly as written in the rules.
    :param client: any redis-py client with ``evalsha``/``eval``/``ping``.
    """
    with _registry_lock:
        _clients[url] = client
        for key in [k for k in _links if k[0] == url]:
            del _links[key]


def get_link(url: str, timeout_ms: int) -> Link:
    """The process's link for ``url`` with this timeout, created on first use."""
    key = (url, timeout_ms)
    link = _links.get(key)
    if link is None:
        with _registry_lock:
            link = _links.get(key)
            if link is None:
                client = _clients.get(url)
                supplied = client is not None
                if client is None:
                    seconds = timeout_ms / 1000.0
                    client = redis.Redis.from_url(
                        url, socket_timeout=seconds, socket_connect_timeout=seconds
                    )
                link = _links[key] = Link(client, timeout_ms, url, check_elapsed=supplied)
    return link


def reset_links() -> None:
    """Forget every link: rules loaded from now on open new ones."""
    _links.clear()


def _after_fork_in_child() -> None:
    # Controllers inherited from the parent keep their links: give those fresh locks and a
    # refiller of their own (started on the next wake). redis-py's pools reconnect by
    # themselves in a new process.
    global _registry_lock
    _registry_lock = threading.Lock()
    for link in list(_links.values()):
        link.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
