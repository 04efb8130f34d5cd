"""``context()``: the calling context on contextvars, across threads, tasks and engines."""

from __future__ import annotations

import asyncio
import contextvars
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

from guard import BlockError, Guard, ManualClock, context
from guard.context import CallContext, current_context
from tests.conftest import TWINS

CHAIN = {"resource": "r", "count": 1, "strategy": "chain", "ref_resource": "checkout"}


def chain_engine() -> Guard:
    g = Guard(clock=ManualClock(0))
    g.load_rules({"flow": [CHAIN]})
    return g


def passes(g: Guard, n: int, resource: str = "r") -> int:
    ok = 0
    for _ in range(n):
        try:
            with g.entry(resource):
                ok += 1
        except BlockError:
            pass
    return ok


def test_context_sets_and_restores() -> None:
    assert current_context() is None
    with context("outer", origin="web") as outer:
        assert outer == CallContext("outer", "web")
        assert current_context() == outer
        with context("inner"):
            assert current_context() == CallContext("inner", "")
        assert current_context() == outer
    assert current_context() is None


def test_context_is_restored_after_an_exception() -> None:
    with pytest.raises(KeyError), context("c"):
        raise KeyError
    assert current_context() is None


async def test_async_with_context() -> None:
    g = chain_engine()
    async with context("checkout", origin="o") as ctx:
        assert ctx.origin == "o"
        assert passes(g, 3) == 1
    assert current_context() is None
    assert passes(g, 3) == 3


@pytest.mark.parametrize("name", ["", None, 5])
def test_context_name_must_be_a_non_empty_string(name: Any) -> None:
    with pytest.raises(ValueError, match="name"):
        context(name)


def test_every_engine_sees_the_context() -> None:
    a, b = chain_engine(), chain_engine()
    with context("checkout"):
        assert passes(a, 3) == 1
        assert passes(b, 3) == 1


def test_a_new_thread_starts_without_the_context() -> None:
    g = chain_engine()
    results: dict[str, Any] = {}

    def run(key: str) -> None:
        results[key] = (current_context(), passes(g, 3))

    with context("checkout"):
        t = threading.Thread(target=run, args=("plain",))
        t.start()
        t.join()
        copied = contextvars.copy_context()
        t = threading.Thread(target=copied.run, args=(run, "copied"))
        t.start()
        t.join()
    assert results["plain"] == (None, 3)  # threads do not inherit contextvars
    assert results["copied"] == (CallContext("checkout", ""), 1)


def test_threads_keep_their_own_contexts() -> None:
    g = chain_engine()
    barrier = threading.Barrier(2)
    results: dict[str, int] = {}

    def run(name: str) -> None:
        with context(name):
            barrier.wait()  # both contexts are active at once
            results[name] = passes(g, 3)
            barrier.wait()

    threads = [threading.Thread(target=run, args=(n,)) for n in ("checkout", "browse")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {"checkout": 1, "browse": 3}


async def test_tasks_inherit_the_context_at_creation() -> None:
    g = chain_engine()
    with context("checkout"):
        task = asyncio.create_task(asyncio.to_thread(lambda: current_context()))
        inner = asyncio.create_task(_count_after_yield(g))
    assert current_context() is None
    assert await task == CallContext("checkout", "")  # to_thread copies the context too
    assert await inner == 1


async def _count_after_yield(g: Guard) -> int:
    await asyncio.sleep(0)  # the parent has left its `with` by now
    return passes(g, 3)


async def test_concurrent_tasks_keep_their_own_contexts() -> None:
    g = chain_engine()
    gate = asyncio.Event()

    async def run(name: str) -> tuple[str | None, int]:
        async with context(name):
            await gate.wait()
            ctx = current_context()
            return (ctx.name if ctx else None, passes(g, 3))

    tasks = [asyncio.create_task(run(n)) for n in ("checkout", "browse", "checkout")]
    await asyncio.sleep(0)
    gate.set()
    got = await asyncio.gather(*tasks)
    assert got[1] == ("browse", 3)
    assert sorted(got[i][1] for i in (0, 2)) == [0, 1]  # one node for the checkout context


@pytest.mark.parametrize("twin", TWINS)
def test_first_context_in_a_fresh_process_is_seen(twin: str, tmp_path: Path) -> None:
    # Entries skip reading the context until one is first entered; the very first one
    # must still be seen, on both twins.
    script = textwrap.dedent(
        """
        from guard import BlockError, Guard, ManualClock, context
        from guard.chain import IMPLEMENTATION

        g = Guard(clock=ManualClock(0))
        g.load_rules({"flow": [{"resource": "r", "count": 1, "strategy": "chain",
                                "ref_resource": "checkout"}]})
        for _ in range(3):
            with g.entry("r"):
                pass
        ok = 0
        with context("checkout"):
            for _ in range(3):
                try:
                    with g.entry("r"):
                        ok += 1
                except BlockError:
                    pass
        print(IMPLEMENTATION, ok)
        """
    )
    env = {**os.environ, "GUARD_PURE": "1" if twin == "py" else "0"}
    out = subprocess.run(
        [sys.executable, "-W", "error", "-c", script],
        capture_output=True,
        text=True,
        env=env,
        cwd=Path(__file__).resolve().parents[2],
        timeout=60,
        check=True,
    )
    assert out.stdout.split() == [twin, "1"]


def test_one_context_object_entered_again_while_active() -> None:
    # Regression: the object kept a single token, so the inner exit dropped it and the
    # outer exit left the context set for good.
    ctx = context("a")
    with ctx:
        with ctx:
            assert current_context() == CallContext("a", "")
        assert current_context() == CallContext("a", "")
    assert current_context() is None


def test_one_context_object_shared_by_threads() -> None:
    # Regression: a module-level context object used by two threads at once left one
    # thread inside the context after its `with` ended (a pooled worker would carry it
    # into its next request).
    shared = context("checkout", origin="web")
    barrier = threading.Barrier(2)
    after: list[Any] = []

    def run() -> None:
        with shared:
            barrier.wait()
            barrier.wait()
        after.append(current_context())

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert after == [None, None]


async def test_one_context_object_shared_by_tasks() -> None:
    shared = context("checkout")
    g = chain_engine()

    async def handler(delay: int) -> tuple[Any, Any]:
        with shared:
            for _ in range(delay):
                await asyncio.sleep(0)
            inside = current_context()
        return inside, current_context()

    results = await asyncio.gather(*(handler(d) for d in (3, 1, 2)))
    assert results == [(CallContext("checkout", ""), None)] * 3
    with shared:
        assert passes(g, 2) == 1
    assert passes(g, 2) == 2


def test_exit_without_enter_is_harmless() -> None:
    ctx = context("a")
    ctx.__exit__(None, None, None)
    assert current_context() is None
