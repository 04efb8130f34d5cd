"""Redis calls with a deadline: whoever asks waits at most ``timeout`` for the reply.

Every call a cluster rule makes (a decision, a lease, a heartbeat, a probe) is a
:class:`Request` that one *sender* thread per link sends; the thread that asked waits for
the reply on a lock, with a timeout. The wait is bounded by construction, not by socket
settings: name resolution, connect, TLS, the send, the reply and the client's own retries
all happen on the sender, and the asker gives up at ``sent + timeout`` whatever the
client is doing (a client supplied with ``use_client`` included).

Requests are sent in the order they were made. Those that queued up while the sender was
busy go out together as one pipeline (one by one on Redis Cluster, whose pipelines refuse
scripts), so concurrent strict callers share a round trip instead of waiting in line. A
request whose asker gave up before it was sent is never sent.

States: ``PENDING`` (queued) -> ``RUNNING`` (taken by the sender) -> ``DONE`` (reply or
error stored, asker woken), or ``DROPPED`` from ``PENDING``/``RUNNING`` when the asker
gives up or the link goes down; a reply that comes after that is thrown away. The state
changes only under the sender's lock, so a reply and a give-up cannot both win.

Cost: one hand-over between threads per call (about 20 us of CPU on top of redis-py's own).
"""

from __future__ import annotations

import _thread
import hashlib
import queue
import threading
from collections import deque
from collections.abc import Callable
from importlib import resources
from typing import Any

import redis
from redis.exceptions import NoScriptError, RedisError

__all__ = ["FAILURES", "PING", "NoReply", "Request", "Script", "Sender"]

#: Errors that mean "Redis did not answer in time or at all".
FAILURES = (RedisError, OSError)
#: An idle sender thread exits after this many seconds (the next call starts another).
IDLE_S = 5.0

PENDING, RUNNING, DONE, DROPPED = 0, 1, 2, 3


class NoReply(RedisError):
    """Redis gave no reply in time, or the link is down: decide without Redis."""


class Script:
    """A Lua script shipped in ``guard/flow/_lua``: EVALSHA, reloading on NOSCRIPT.

    :param name: the file name, e.g. ``"cluster_acquire.lua"``.
    """

    def __init__(self, name: str) -> None:
        self.source = resources.files("guard.flow").joinpath("_lua", name).read_text("utf-8")
        self.sha = hashlib.sha1(self.source.encode("utf-8")).hexdigest()

    def __call__(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        """Run on ``client`` (any redis-py client or pipeline: standalone, Sentinel, Cluster)."""
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except NoScriptError:
            return self.load(client, keys, args)

    def load(self, client: Any, keys: list[str], args: list[Any]) -> Any:
        # A restarted or flushed server lost the script: EVAL runs and caches it.
        return client.eval(self.source, len(keys), *keys, *args)


#: The request of a probe: ``PING`` instead of a script.
PING: Script | None = None


class Request:
    """One call: ``script`` with ``keys`` and ``args`` (``PING`` when ``script`` is None)."""

    __slots__ = ("args", "done", "error", "finished", "keys", "reply", "script", "sent", "state")

    def __init__(self, script: Script | None, keys: list[str], args: list[Any]) -> None:
        self.script = script
        self.keys = keys
        self.args = args
        self.sent = 0.0  # monotonic seconds when it was queued: its wait starts here
        self.state = PENDING
        self.finished = False  # the sender is done with it (sent and answered, or skipped)
        self.reply: Any = None
        self.error: BaseException | None = None
        # Held until the reply (or the give-up) is stored: a raw lock is the cheapest
        # one-shot signal with a timed wait.
        self.done = _thread.allocate_lock()
        self.done.acquire()

    def run(self, client: Any) -> Any:
        if self.script is None:
            return client.ping()
        return self.script(client, self.keys, self.args)


class Sender:
    """The thread that sends a link's requests, and the queue in front of it.

    :param client: the redis-py client to send with.
    :param name: the thread's name.
    :param lock: guards the queue and the requests' states (the link's lock).
    """

    def __init__(self, client: Any, name: str, lock: Any) -> None:
        self.client = client
        self.name = name
        self.lock = lock
        # Requests the sender is not done with, oldest first, so ``pending[0]`` is the
        # oldest request Redis has not answered (or that waits behind one).
        self.pending: deque[Request] = deque()
        self._queue: queue.SimpleQueue[Request] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.pipelined = 0  # requests sent in a pipeline with others
        # Redis Cluster's pipelines refuse EVALSHA: its requests go one by one.
        self.pipelines = isinstance(client, redis.Redis)

    def after_fork(self, lock: Any) -> None:
        """Forget the parent's thread and requests (a forked child has neither)."""
        self.lock = lock
        self.pending = deque()
        self._queue = queue.SimpleQueue()
        self._thread = None

    # -- the asking side (under ``lock``, held by the caller) --------------------------

    def submit(self, request: Request) -> None:
        """Queue ``request`` (the caller holds ``lock``)."""
        self.pending.append(request)
        self._queue.put(request)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    def oldest_unanswered(self) -> float:
        """When the oldest request still waiting for Redis was queued (0.0: none)."""
        pending = self.pending
        return pending[0].sent if pending else 0.0

    def drop(self, request: Request) -> bool:
        """Give up on ``request`` unless its reply is in (the caller holds ``lock``).

        :returns: True if it was dropped, False if it is done.
        """
        if request.state == DONE:
            return False
        request.state = DROPPED
        return True

    def drop_all(self, error: BaseException) -> None:
        """Give up on every request not done yet and wake their askers (caller holds ``lock``)."""
        for request in self.pending:
            if request.state in (PENDING, RUNNING):
                request.state = DROPPED
                request.error = error
                request.done.release()

    # -- the sender thread -------------------------------------------------------------

    def _run(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=IDLE_S)
            except queue.Empty:
                with self.lock:
                    if self._queue.empty():
                        self._thread = None
                        return
                continue
            batch = [first]
            while not self._queue.empty():  # only this thread takes from the queue
                batch.append(self._queue.get_nowait())
            self._send(batch)

    def _send(self, batch: list[Request]) -> None:
        if self.pipelines:
            self._send_together(batch)
        else:
            for request in batch:
                self._send_together([request])

    def _send_together(self, batch: list[Request]) -> None:
        with self.lock:
            running = []
            for request in batch:
                if request.state == PENDING:
                    request.state = RUNNING
                    running.append(request)
                else:  # its asker gave up before it was sent: never send it
                    self._finish(request, None, None)
        if len(running) > 1:
            self.pipelined += len(running)
        try:
            outcomes = _execute(self.client, running)
        except Exception as exc:  # a bug must not leave the askers waiting, nor kill the thread
            outcomes = [(None, exc)] * len(running)
        with self.lock:
            for request, (reply, error) in zip(running, outcomes, strict=True):
                self._finish(request, reply, error)

    def _finish(self, request: Request, reply: Any, error: BaseException | None) -> None:
        # Under ``lock``. A skipped request may finish before an earlier one that is being
        # sent: ``pending`` loses only its finished head.
        request.finished = True
        pending = self.pending
        while pending and pending[0].finished:
            pending.popleft()
        if request.state == RUNNING:
            request.state = DONE
            request.reply = reply
            request.error = error
            request.done.release()


def _execute(client: Any, requests: list[Request]) -> list[tuple[Any, BaseException | None]]:
    """Run ``requests`` (one call, or one pipeline for several): (reply, error) for each."""
    if len(requests) == 1:
        return [_outcome(requests[0].run, client)]
    if not requests:
        return []
    pipe = client.pipeline(transaction=False)
    for request in requests:
        request.run(pipe)
    try:
        replies = pipe.execute(raise_on_error=False)
    except Exception as exc:  # the connection failed: every request of the pipeline did
        return [(None, exc)] * len(requests)
    out: list[tuple[Any, BaseException | None]] = []
    for request, reply in zip(requests, replies, strict=True):
        if isinstance(reply, NoScriptError) and request.script is not None:
            out.append(_outcome(request.script.load, client, request.keys, request.args))
        elif isinstance(reply, Exception):
            out.append((None, reply))
        else:
            out.append((reply, None))
    return out


def _outcome(run: Callable[..., Any], *args: Any) -> tuple[Any, BaseException | None]:
    try:
        return run(*args), None
    except Exception as exc:  # handed to the asker, who decides what it means
        return None, exc
