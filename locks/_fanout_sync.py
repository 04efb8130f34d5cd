"""Send one command to every Redlock master, then read the replies as they come: no threads.

Redlock keeps its own connections to each master, built from the client's settings but with
client-side retries OFF and socket timeouts equal to the per-node timeout. redis-py's default
retry re-sends a timed-out command with backoff, which turned a 100 ms per-node timeout into
seconds of stall when masters froze (measured: 10.9 s with 3 of 5 stopped); Redlock needs a
dead node to cost at most the per-node timeout, once per round.

A reply that does not come within the round's deadline is not waited for. Its connection is
not dropped either (a fresh connection to a frozen server would stall in its handshake): it is
kept with a count of replies still owed, later commands are pipelined behind them and the stale
replies are skipped when they arrive. Commands queued to a frozen master therefore still run, in
order, when it wakes up; that is how a clean-up release reaches a node that was late.
"""

from __future__ import annotations

import math
import select
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from locks._core import Plan

__all__ = ["Master", "fanout", "master_for"]

_MAX_OWED = 10_000  # replies a frozen master may owe before its connection is given up


class _Link:
    __slots__ = ("conn", "dead", "owed")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.owed = 0
        self.dead = False


class Master:
    """Redlock's connections to one master (shared by every Redlock on that client)."""

    def __init__(self, client: Any, node_timeout: float) -> None:
        pool = client.connection_pool
        kwargs = dict(pool.connection_kwargs)
        kwargs.update(
            socket_timeout=node_timeout,
            socket_connect_timeout=node_timeout,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )
        self._make = lambda: pool.connection_class(**kwargs)
        self._free: list[_Link] = []
        self._mutex = threading.Lock()

    def take(self) -> _Link:
        # A link that still owes replies goes first: a command queued behind a late one runs
        # after it on the server (a release never overtakes its own acquire), and a frozen
        # master gets no new connection that would stall in its handshake.
        with self._mutex:
            for i, link in enumerate(self._free):
                if link.owed:
                    return self._free.pop(i)
            if self._free:
                return self._free.pop()
        return _Link(self._make())

    def give(self, link: _Link) -> None:
        if link.dead or link.owed > _MAX_OWED:
            link.conn.disconnect()
            return
        with self._mutex:
            self._free.append(link)

    def close(self) -> None:
        """Close the idle connections (when the client goes away)."""
        with self._mutex:
            links, self._free = self._free, []
        for link in links:
            link.conn.disconnect()


_MASTERS: weakref.WeakKeyDictionary[Any, dict[float, Master]] = weakref.WeakKeyDictionary()
_MASTERS_MUTEX = threading.Lock()


def master_for(client: Any, node_timeout: float) -> Master:
    with _MASTERS_MUTEX:
        by_timeout = _MASTERS.setdefault(client, {})
        master = by_timeout.get(node_timeout)
        if master is None:
            master = by_timeout[node_timeout] = Master(client, node_timeout)
            weakref.finalize(client, master.close)
        return master


Command = tuple[Any, ...]


def _command(item: Plan | Command) -> Command:
    if isinstance(item, Plan):
        return ("EVALSHA", item.script.sha, len(item.keys), *item.keys, *item.args)
    return item


def _readable(link: _Link) -> bool:
    try:
        return bool(link.conn.can_read(0))
    except Exception:
        return True  # let read_response raise the error


def fanout(
    masters: list[Master],
    items: Sequence[Plan | Command | None],
    timeout: float,
    done: Callable[[list[Any]], bool] | None = None,
    wait_late: bool = True,
) -> list[Any]:
    """Send ``items[i]`` to ``masters[i]`` (None skips it) and collect the replies.

    :param timeout: the round's deadline, from now: the per-node timeout.
    :param done: called after each reply; True ends the round early (quorum reached or lost).
    :param wait_late: False sends to masters that still owe replies without waiting for them.
    :returns: per master, the reply, the exception it raised, or None when it did not answer.
    """
    deadline = time.monotonic() + timeout
    replies: list[Any] = [None] * len(masters)
    links: dict[int, _Link] = {}
    waiting: set[int] = set()
    packed: dict[int, Any] = {}  # pack a command once for all masters: packing is costly
    for i, item in enumerate(items):
        if item is None:
            continue
        link = masters[i].take()
        if not wait_late and link.owed and isinstance(item, Plan):
            # Nobody will read this reply in time to see a NOSCRIPT: send the whole script.
            cmd = ("EVAL", item.script.body, len(item.keys), *item.keys, *item.args)
            data = link.conn._command_packer.pack(*cmd)
        else:
            waiting.add(i)
            data = packed.get(id(item))
            if data is None:
                data = packed[id(item)] = link.conn._command_packer.pack(*_command(item))
        _send(masters[i], link, i, data, links, replies)
    waiting &= links.keys()
    _collect(links, items, waiting, replies, deadline, done)
    for i, link in links.items():
        if replies[i] is None and not link.dead:
            link.owed += 1  # its reply comes later: skip it then
        masters[i].give(link)
    return replies


def _send(
    master: Master, link: _Link, i: int, data: Any, links: dict[int, _Link], replies: list[Any]
) -> None:
    try:
        link.conn.send_packed_command(data, check_health=False)
    except Exception as exc:
        link.dead = True
        master.give(link)
        replies[i] = exc
        return
    links[i] = link


def _collect(
    links: dict[int, _Link],
    items: Sequence[Plan | Command | None],
    waiting: set[int],
    replies: list[Any],
    deadline: float,
    done: Callable[[list[Any]], bool] | None,
) -> None:
    # A link that owed stale replies may hold our reply in its parser's buffer, where poll()
    # cannot see it: those are asked with can_read(); the rest wait in one poll() call.
    buffered = {i for i in waiting if links[i].owed}
    poller = select.poll()
    fds: dict[int, int] = {}
    gone: list[int] = []
    for i in waiting:
        sock = links[i].conn._sock
        if sock is None:  # dropped meanwhile: read_response reports why
            gone.append(i)
        else:
            fds[sock.fileno()] = i
            poller.register(sock, select.POLLIN)
    while waiting:
        ready = gone or [i for i in buffered & waiting if _readable(links[i])]
        gone = []
        if not ready:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            events = poller.poll(max(1, math.ceil(remaining * 1000)))
            ready = [fds[fd] for fd, _ in events if fds.get(fd) in waiting]
            if not ready:
                continue
        for i in ready:
            link = links[i]
            try:
                reply: Any = link.conn.read_response()
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                link.dead = True
                reply = exc
            except Exception as exc:  # a ResponseError: the connection is still fine
                reply = exc
            if link.owed and not link.dead:
                link.owed -= 1  # a stale reply from an earlier round
                buffered.add(i)
                continue
            plan = items[i]
            if isinstance(reply, NoScriptError) and isinstance(plan, Plan):
                # First use of the script on that server: EVAL runs and caches it.
                try:
                    link.conn.send_command(
                        "EVAL", plan.script.body, len(plan.keys), *plan.keys, *plan.args
                    )
                    continue
                except Exception as exc:
                    link.dead = True
                    reply = exc
            replies[i] = reply
            waiting.discard(i)
            sock = link.conn._sock
            if sock is not None:
                poller.unregister(sock)
        if done is not None and done(replies):
            return
