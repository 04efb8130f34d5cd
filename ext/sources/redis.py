"""Rules kept in a Redis key and pushed by pub/sub to every engine that subscribes.

The key holds the whole rule document (YAML or JSON, the rule file's shape); every change
is also published on the channel named like the key, so subscribers apply it at once
(``guard rules push`` does both in one MULTI). A subscriber reads the key when it starts
and again after every reconnect, so an update published while its subscription was down
is not lost. Every document is validated exactly like the file (``guard.rules.parse_rules``):
a bad one is logged, counted and ignored, and the last good rules stay in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.exceptions import RedisError

from guard.errors import RuleError
from guard.rules import RuleSet, parse_rules

__all__ = ["RedisRuleSource"]

log = logging.getLogger("guard.sources.redis")

#: Seconds between reconnect attempts while Redis is unreachable.
RECONNECT_DELAY = 0.5


class RedisRuleSource:
    """Keep an engine's rules in step with a Redis key and its pub/sub channel.

    ``start()`` reads the key (if Redis answers) and starts a daemon thread that
    subscribes to the channel named like the key, applies each pushed document, and on
    every reconnect reads the key again. Use it as a context manager, or call ``stop()``.

    :param client: a ``redis.Redis`` (or a Sentinel/Cluster client) for the key and the
        subscription.
    :param engine: a ``guard.Guard`` whose rules are replaced.
    :param key: the key holding the rules; the channel has the same name.
    :param on_result: called as ``on_result(ok, error)`` after each document that
        changed the rules (``ok``) or was rejected (``error`` is its ``RuleError``), for
        metrics such as ``guard_rules_reload_total``; it runs on the source's thread.

    Counters: ``successes`` (documents that changed the rules), ``failures`` (documents
    rejected), ``last_error`` (the message of the last rejected one), ``reads`` (reads of
    the key: at start and after each (re)subscription) and ``reconnects``.
    """

    def __init__(
        self,
        client: Any,
        engine: Any,
        key: str = "guard:rules",
        *,
        on_result: Callable[[bool, RuleError | None], Any] | None = None,
    ) -> None:
        self.client = client
        self.engine = engine
        self.key = key
        self.on_result = on_result
        self.successes = 0
        self.failures = 0
        self.reconnects = 0
        self.reads = 0
        self._rejected: bytes | None = None
        self.last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reread = threading.Event()
        self._apply_lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, engine: Any, key: str = "guard:rules", **kwargs: Any) -> Any:
        """A source over a new client for ``url`` (``sidecar: rules_redis: {url, key}``)."""
        client = redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=10)
        return cls(client, engine, key, **kwargs)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> RedisRuleSource:
        """Apply the key's rules now if Redis answers, then follow the channel.

        :returns: self.
        """
        if self._thread is not None:
            raise RuntimeError(f"RedisRuleSource({self.key!r}) already started")
        try:
            self.refresh()
        except (RedisError, OSError) as exc:
            log.warning("%s: Redis unreachable at start (%s); retrying", self.key, exc)
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name=f"guard-rules {self.key}", daemon=True
        )
        self._thread.start()
        return self

    def stop(self, timeout: float = 2.0) -> None:
        """Stop following the channel (the rules in force stay)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def __enter__(self) -> RedisRuleSource:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- applying documents ------------------------------------------------------------

    def refresh(self) -> bool:
        """Read the key and apply it now.

        :returns: True if the engine's rules changed.
        :raises RedisError: when Redis does not answer.
        """
        value = self.client.get(self.key)
        self.reads += 1
        if value is None:
            log.info("%s: no rules stored yet", self.key)
            return False
        return self.apply(value, "key")

    def apply(self, document: bytes | str, origin: str = "push") -> bool:
        """Validate ``document`` like the rule file and load it; keep the rules if bad.

        :returns: True if the engine's rules changed.
        """
        data = document.encode("utf-8") if isinstance(document, str) else bytes(document)
        with self._apply_lock:
            try:
                rules: RuleSet = parse_rules(data)  # bytes: always text, never a path
            except RuleError as exc:
                if data == self._rejected:
                    return False  # the same bad document read again: reported already
                self._rejected = data
                self.failures += 1
                self.last_error = str(exc)
                log.error("%s: rejected rules (%s); keeping the last good ones: %s",
                          self.key, origin, exc)  # fmt: skip
                self._report(False, exc)
                return False
            self._rejected = None
            changed = bool(self.engine.load_rules(rules))
            if changed:  # an unchanged document (a re-read, a repeated push) is no reload
                self.successes += 1
                log.info("%s: rules updated (%s)", self.key, origin)
                self._report(True, None)
            return changed

    def _report(self, ok: bool, error: RuleError | None) -> None:
        if self.on_result is not None:
            try:
                self.on_result(ok, error)
            except Exception:
                log.exception("%s: on_result callback failed", self.key)

    # -- the subscriber thread -----------------------------------------------------------

    def _on_connect(self, connection: Any) -> None:
        # redis-py may reconnect (and resubscribe) inside get_message: read the key again.
        self._reread.set()

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            pubsub = self.client.pubsub(ignore_subscribe_messages=True)
            try:
                # Subscribe before reading: a push in between arrives as a message.
                pubsub.subscribe(self.key)
                if pubsub.connection is not None:
                    pubsub.connection.register_connect_callback(self._on_connect)
                if not first:
                    self.reconnects += 1
                first = False
                self.refresh()  # whatever changed before this subscription existed
                self._listen(pubsub)
            except (RedisError, OSError) as exc:
                if not self._stop.is_set():
                    log.warning("%s: subscription lost (%s); reconnecting", self.key, exc)
                    self._stop.wait(RECONNECT_DELAY)
                first = False
            finally:
                try:
                    pubsub.close()
                except (RedisError, OSError):
                    pass

    def _listen(self, pubsub: Any) -> None:
        while not self._stop.is_set():
            message = pubsub.get_message(timeout=0.2)
            if self._reread.is_set():
                self._reread.clear()
                self.reconnects += 1
                self.refresh()
            if message is None or message.get("type") != "message":
                continue
            data = message.get("data")
            if data:
                self.apply(data, "push")
            else:  # an empty notice: the key itself changed
                self.refresh()
