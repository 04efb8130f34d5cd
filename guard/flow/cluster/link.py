"""One process's connection to a cluster rule's Redis: client, sender, refiller and health.

A *link* is shared by every cluster controller of the process that names the same URL
(and timeout). It owns one redis-py client, the *sender* thread that makes every call on
it (``calls``), and the *refiller* thread, which runs the lease script for each controller
when its lease runs low, returns unused tokens, beats the heartbeat and, while Redis is
down, probes it every ``PROBE_INTERVAL`` until it answers again.

Health belongs to the link, not to a rule. Redis counts as down, and every controller of
the link switches to local enforcement, as soon as one call fails or one request has gone
``timeout`` without a reply: the thread waiting for it gives up at that moment and marks
the link down (a caller, or the refiller when the process is idle), and a caller that
comes later finds the overdue request at the head of the queue and marks it down without
waiting. So the switch happens within ``timeout`` of the first request Redis left
unanswered, and no call waits longer than ``timeout``. All switch back together when a
probe succeeds.

Concurrency contract: controllers call ``healthy``, ``call`` and ``wake`` from any thread;
``lock`` guards the controller list, the queue of requests and ``healthy``; a transition
(down or up, with every controller's switch) completes before the next one starts.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import weakref
from typing import Any, Protocol

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from guard.flow.cluster.calls import FAILURES, PING, NoReply, Request, Script, Sender

__all__ = ["PROBE_INTERVAL", "Link", "get_link", "links", "reset_links", "use_client"]

log = logging.getLogger("guard.flow.cluster")

#: Seconds between probes of a Redis that is down.
PROBE_INTERVAL = 0.1

_monotonic = time.monotonic


class LinkUser(Protocol):
    """What the refiller needs from a controller."""

    def due_in(self, now: float) -> float: ...

    def refill(self, link: Link) -> None: ...

    def on_down(self) -> None: ...

    def on_up(self) -> None: ...


class Link:
    """A shared Redis client, its sender and refiller threads (see the module docstring).

    :param client: the redis-py client to use.
    :param timeout_ms: the longest any call waits for Redis before Redis counts as down.
    :param name: how logs name this Redis (its URL).
    """

    def __init__(self, client: Any, timeout_ms: int, name: str):
        self.client = client
        self.timeout = timeout_ms / 1000.0
        self.name = name
        self.healthy = True
        self.lock = threading.Lock()
        self.sender = Sender(client, f"guard-cluster-send {name}", self.lock)
        self._transition = threading.RLock()
        self.users: weakref.WeakSet[Any] = weakref.WeakSet()
        self.retiring: list[Any] = []
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.calls = 0  # script calls sent (decisions, leases, heartbeats)
        self.longest_wait = 0.0  # seconds, the longest any call waited for its reply

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
        """Reset locks and threads in a forked child (its parent's threads are gone)."""
        self.lock = threading.Lock()
        self.sender.after_fork(self.lock)
        self._transition = threading.RLock()
        self._wake = threading.Event()
        self._thread = None

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

    # -- calls -------------------------------------------------------------------------

    def call(self, script: Script | None, keys: list[str], args: list[Any]) -> Any:
        """Run ``script`` (``PING`` when None) and wait at most ``timeout`` for the reply.

        The wait starts now and covers everything: queueing, connect, send and reply.
        Called on a link that is down, or with a request already overdue, it raises at once.

        :raises NoReply: no reply within ``timeout``, or the link is down; it is marked down.
        :raises RedisError: or ``OSError`` when the call failed; the link is marked down.
        """
        request = Request(script, keys, args)
        probe = script is None
        with self.lock:
            sent = request.sent = _monotonic()
            if not self.healthy and not probe:
                raise NoReply(f"Redis {self.name} is down")
            oldest = self.sender.oldest_unanswered()
            overdue = self.healthy and oldest > 0.0 and sent - oldest >= self.timeout
            if not overdue:
                self.sender.submit(request)
                self.calls += not probe
        if overdue:
            self.mark_down(self._silence(sent - oldest), oldest)
            raise NoReply("an earlier request is overdue")
        answered = request.done.acquire(True, max(0.0, sent + self.timeout - _monotonic()))
        waited = _monotonic() - sent
        if waited > self.longest_wait:
            self.longest_wait = waited
        if not answered:
            with self.lock:
                dropped = self.sender.drop(request)
                oldest = self.sender.oldest_unanswered() or sent
            if dropped:
                if not probe:
                    self.mark_down(self._silence(waited), min(oldest, sent))
                raise NoReply(f"no reply within {self.timeout * 1000:.0f} ms")
        error = request.error
        if isinstance(error, NoReply):  # the link went down while this call waited
            raise error
        if error is not None:
            if not probe and isinstance(error, FAILURES):
                self.mark_down(error, sent)
            raise error
        return request.reply

    def _silence(self, seconds: float) -> str:
        timeout_ms = self.timeout * 1000
        return f"no reply within {timeout_ms:.0f} ms to a request sent {seconds * 1000:.1f} ms ago"

    # -- health ------------------------------------------------------------------------

    def mark_down(self, reason: object, since: float | None = None) -> None:
        """Switch every controller of this link to local enforcement (once).

        :param reason: what went wrong, for the log.
        :param since: when the first request Redis left unanswered was sent (monotonic
            seconds); the log record carries it as ``unanswered_since``.
        """
        with self.lock:
            if not self.healthy:
                return  # switched already, or being switched: a caller never waits for it
        with self._transition:  # a transition completes before the next one starts
            with self.lock:
                if not self.healthy:
                    return
                self.healthy = False  # from here on, decisions go local
                users = list(self.users)
            for user in users:
                user.on_down()
            with self.lock:  # the calls still waiting decide locally now, in fallback state
                self.sender.drop_all(NoReply(f"Redis {self.name} is down"))
            log.warning(
                "cluster flow: Redis %s unavailable (%s); enforcing locally",
                self.name,
                reason,
                extra={"unanswered_since": _monotonic() if since is None else since},
            )
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
                now = _monotonic()
                due = user.due_in(now)
                if due <= 0.0:
                    self._guarded(user.refill)
                    if not self.healthy:
                        break
                    due = user.due_in(_monotonic())
                wait = min(wait, max(due, 0.0))
            if wait > 0.0:
                self._wake.wait(wait)

    def _guarded(self, refill: Any) -> None:
        try:
            refill(self)
        except FAILURES:
            pass  # ``call`` has marked the link down
        except Exception:  # a bug must not kill the refiller of every rule
            log.exception("cluster flow: refill failed")

    def _probe(self) -> None:
        try:
            self.call(PING, [], [])
        except FAILURES:
            return
        self.mark_up()


_links: dict[tuple[str, int], Link] = {}
_clients: dict[str, Any] = {}
_registry_lock = threading.Lock()


def use_client(url: str, client: Any) -> None:
    """Make cluster rules whose ``url`` is ``url`` use ``client``.

    For Redis Cluster (``redis.cluster.RedisCluster``) or a Sentinel-managed master
    (``Sentinel(...).master_for(...)``): the rule file names a URL, the application
    supplies the client. No call waits longer than the rule's ``timeout_ms`` whatever the
    client's own timeouts; a ``socket_timeout`` close to ``timeout_ms`` (and no retries)
    frees the link sooner after Redis stops answering, so recovery is noticed sooner.
    Controllers created afterwards use it.

    :param url: the URL exactly as written in the rules.
    :param client: any redis-py client with ``evalsha``/``eval``/``ping``/``pipeline``.
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
                if client is None:
                    # Socket timeouts free the sender soon after Redis stops answering; no
                    # retries, since nobody waits for them. Waits are bounded in ``call``.
                    seconds = timeout_ms / 1000.0
                    client = redis.Redis.from_url(
                        url,
                        socket_timeout=seconds,
                        socket_connect_timeout=seconds,
                        retry=Retry(NoBackoff(), 0),
                    )
                link = _links[key] = Link(client, timeout_ms, url)
    return link


def links() -> list[Link]:
    """Every link of this process (for status pages, tests and benchmarks)."""
    return list(_links.values())


def reset_links() -> None:
    """Forget every link: rules loaded from now on open new ones."""
    _links.clear()


def _after_fork_in_child() -> None:
    # Controllers inherited from the parent keep their links: give those fresh locks and
    # threads of their own (started on the next call or wake). redis-py's pools reconnect
    # by themselves in a new process.
    global _registry_lock
    _registry_lock = threading.Lock()
    for link in list(_links.values()):
        link.after_fork()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
