"""``@guard``: plain and async functions, names, handlers, exceptions, origins, methods."""

from __future__ import annotations

import asyncio
import functools
import inspect
from typing import Any

import pytest

import guard as guard_pkg
from guard import BlockError, FlowBlocked, Guard, ManualClock, default_engine


def engine(*flow: dict[str, Any]) -> Guard:
    g = Guard(clock=ManualClock(0))
    if flow:
        g.load_rules({"flow": list(flow)})
    return g


def clock(g: Guard) -> ManualClock:
    assert isinstance(g.clock, ManualClock)
    return g.clock


def module_level(x: int) -> int:
    """Doubles."""
    return 2 * x


def test_sync_function_result_args_and_metadata() -> None:
    g = engine()
    f = g.guard()(module_level)
    assert f(21) == 42
    assert f(x=4) == 8
    assert f.__name__ == "module_level"
    assert f.__doc__ == "Doubles."
    assert f.__wrapped__ is module_level
    assert inspect.signature(f) == inspect.signature(module_level)
    s = g.stats(f"{__name__}.module_level")
    assert (s.total_pass, s.total_success) == (2, 2)


def test_default_resource_name_is_module_and_qualname() -> None:
    g = engine()

    @g.guard
    def bare() -> None:
        pass

    @g.guard()
    def called() -> None:
        pass

    @g.guard("named.resource")
    def named() -> None:
        pass

    @g.guard(resource="kw.resource")
    def kw() -> None:
        pass

    for f in (bare, called, named, kw):
        f()
    local = f"{__name__}.test_default_resource_name_is_module_and_qualname.<locals>"
    assert g.resources() == sorted(
        [f"{local}.bare", f"{local}.called", "named.resource", "kw.resource"]
    )


def test_sync_rt_is_measured_around_the_call() -> None:
    g = engine()

    @g.guard("r")
    def work(ms: int) -> None:
        clock(g).advance(ms)

    work(30)
    work(10)
    s = g.stats("r")
    assert (s.avg_rt_ms, s.min_rt_ms, s.concurrency) == (20.0, 10.0, 0)


async def test_async_function_rt_is_measured_to_completion() -> None:
    g = engine()
    seen: list[int] = []

    @g.guard("r")
    async def work(ms: int) -> str:
        await asyncio.sleep(0)
        seen.append(g.stats("r").concurrency)
        clock(g).advance(ms)
        await asyncio.sleep(0)
        return "done"

    assert asyncio.iscoroutinefunction(work)
    coro = work(40)
    assert g.stats("r").total_pass == 0  # nothing happens before the coroutine runs
    assert await coro == "done"
    assert seen == [1]
    s = g.stats("r")
    assert (s.total_pass, s.total_success, s.avg_rt_ms, s.concurrency) == (1, 1, 40.0, 0)


def test_blocked_call_goes_to_block_handler_with_error() -> None:
    g = engine({"resource": "r", "count": 0})
    calls: list[Any] = []

    def handler(*args: Any, error: BlockError, **kwargs: Any) -> str:
        calls.append((args, kwargs, error))
        return "handled"

    def fallback(*args: Any, error: BaseException, **kwargs: Any) -> str:
        return "fallback"

    @g.guard("r", block_handler=handler, fallback=fallback)
    def f(a: int, b: int = 0) -> str:
        pytest.fail("a blocked call must not run")

    assert f(1, b=2) == "handled"  # block_handler wins over fallback
    ((args, kwargs, error),) = calls
    assert args == (1,) and kwargs == {"b": 2}
    assert isinstance(error, FlowBlocked) and error.resource == "r"
    assert g.stats("r").total_block == 1


@pytest.mark.parametrize("nargs", [0, 1, 8, 9, 20])
def test_block_handler_gets_every_positional_argument_and_the_error(nargs: int) -> None:
    # Positional-only calls take the compiled twin's one-vectorcall path (up to 8 args).
    g = engine({"resource": "r", "count": 0})
    seen: list[Any] = []

    def handler(*args: Any, error: BlockError) -> tuple[Any, ...]:
        seen.append(error)
        return args

    @g.guard("r", block_handler=handler)
    def f(*args: Any) -> Any:
        pytest.fail("a blocked call must not run")

    values = tuple(object() for _ in range(nargs))
    result = f(*values)
    assert result == values and all(a is b for a, b in zip(result, values, strict=True))
    assert isinstance(seen[0], FlowBlocked) and seen[0].resource == "r"


def test_blocked_call_goes_to_fallback_without_block_handler() -> None:
    g = engine({"resource": "r", "count": 0})

    @g.guard("r", fallback=lambda x, error: ("fallback", x, error.reason))
    def f(x: int) -> Any:
        return x

    assert f(5) == ("fallback", 5, "flow")


def test_blocked_call_without_handlers_raises() -> None:
    g = engine({"resource": "r", "count": 0})
    ran = []

    @g.guard("r")
    def f() -> None:
        ran.append(1)

    with pytest.raises(FlowBlocked) as info:
        f()
    assert info.value.rule is g.rules.flow[0]
    assert ran == []


async def test_async_handlers_are_awaited() -> None:
    g = engine({"resource": "r", "count": 0})

    async def handler(x: int, error: BlockError) -> str:
        await asyncio.sleep(0)
        return f"async handler {x} {error.reason}"

    @g.guard("r", block_handler=handler)
    async def f(x: int) -> str:
        return "ran"

    assert await f(3) == "async handler 3 flow"

    @g.guard("r", fallback=lambda x, error: f"sync fallback {x}")
    async def h(x: int) -> str:
        return "ran"

    assert await h(4) == "sync fallback 4"


async def test_async_fallback_on_business_exception_is_awaited() -> None:
    g = engine()

    async def fallback(x: int, error: BaseException) -> str:
        await asyncio.sleep(0)
        return f"recovered {x} from {type(error).__name__}"

    @g.guard("r", fallback=fallback)
    async def f(x: int) -> str:
        raise RuntimeError("business")

    assert await f(1) == "recovered 1 from RuntimeError"
    s = g.stats("r")
    assert (s.total_success, s.total_exception) == (1, 1)


def test_traced_exception_goes_to_fallback_and_is_counted() -> None:
    g = engine()
    errors: list[BaseException] = []

    def fallback(x: int, *, error: BaseException) -> str:
        errors.append(error)
        return "fallback"

    @g.guard("r", fallback=fallback)
    def f(x: int) -> str:
        raise KeyError(x)

    assert f(7) == "fallback"
    assert isinstance(errors[0], KeyError) and errors[0].args == (7,)
    s = g.stats("r")
    assert (s.total_pass, s.total_success, s.total_exception, s.concurrency) == (1, 1, 1, 0)


def test_traced_exception_without_fallback_propagates_and_is_counted() -> None:
    g = engine()

    @g.guard("r", block_handler=lambda error: "only for blocks")
    def f() -> None:
        raise ValueError("business")

    with pytest.raises(ValueError, match="business"):
        f()
    assert g.stats("r").total_exception == 1


@pytest.mark.parametrize("front", ["sync", "async"])
async def test_ignored_or_untraced_exceptions_propagate_untouched(front: str) -> None:
    g = engine()
    fallbacks: list[BaseException] = []

    def fallback(*args: Any, error: BaseException) -> None:
        fallbacks.append(error)

    class Stop(BaseException):
        pass

    raised = [KeyError("ignored"), OSError("untraced"), Stop()]
    options: list[dict[str, Any]] = [
        {"exceptions_to_ignore": (LookupError,)},
        {"exceptions_to_trace": (ValueError,)},
        {},  # Stop is no Exception: outside the default exceptions_to_trace
    ]
    for exc, opts in zip(raised, options, strict=True):
        if front == "sync":

            def f(exc: BaseException = exc) -> None:
                raise exc

            wrapped = g.guard("r", fallback=fallback, **opts)(f)
            with pytest.raises(type(exc)) as info:
                wrapped()
        else:

            async def af(exc: BaseException = exc) -> None:
                raise exc

            awrapped = g.guard("r", fallback=fallback, **opts)(af)
            with pytest.raises(type(exc)) as info:
                await awrapped()
        assert info.value is exc
    assert fallbacks == []
    s = g.stats("r")
    assert (s.total_success, s.total_exception, s.concurrency) == (3, 0, 0)


def test_block_error_raised_inside_is_not_traced() -> None:
    g = engine({"resource": "inner", "count": 0})
    fallbacks = []

    @g.guard("inner")
    def inner() -> None:
        pass

    @g.guard("outer", fallback=lambda error: fallbacks.append(error))
    def outer() -> None:
        inner()

    with pytest.raises(FlowBlocked):
        outer()
    assert fallbacks == []
    assert g.stats("outer").total_exception == 0


def test_origin_string_and_callable() -> None:
    g = engine({"resource": "r", "count": 1, "limit_app": "web"})
    seen: list[Any] = []

    @g.guard("r", origin="web", fallback=lambda error: "blocked")
    def fixed() -> str:
        return "ok"

    assert [fixed(), fixed()] == ["ok", "blocked"]

    def pick(user: str, *, via: str = "") -> str:
        seen.append((user, via))
        return via

    @g.guard("r", origin=pick, fallback=lambda user, via="", error=None: "blocked")
    def by_arg(user: str, *, via: str = "") -> str:
        return "ok"

    assert by_arg("ann", via="app") == "ok"  # origin "app": not limited
    assert by_arg("bob", via="app") == "ok"
    assert by_arg("cid", via="web") == "blocked"  # "web" already used its one
    assert seen == [("ann", "app"), ("bob", "app"), ("cid", "web")]


def test_callable_origin_returning_none_is_no_origin() -> None:
    g = engine({"resource": "r", "count": 1, "limit_app": "other"})

    @g.guard("r", origin=lambda: None)
    def f() -> str:
        return "ok"

    assert [f(), f(), f()] == ["ok", "ok", "ok"]


class Service:
    engine = engine({"resource": "svc.limited", "count": 1})

    def __init__(self, name: str) -> None:
        self.name = name

    @engine.guard
    def hello(self, who: str) -> str:
        return f"{self.name} greets {who}"

    @engine.guard("svc.limited", block_handler=lambda self, error: f"{self.name} is busy")
    def limited(self) -> str:
        return f"{self.name} served"

    @classmethod
    @engine.guard
    def make(cls, name: str) -> Service:
        return cls(name)

    @staticmethod
    @engine.guard("svc.static")
    def static(x: int) -> int:
        return x + 1

    @engine.guard
    async def ahello(self) -> str:
        return f"async {self.name}"


async def test_methods_decorated_in_classes() -> None:
    a, b = Service("a"), Service("b")
    assert a.hello("you") == "a greets you"
    assert b.hello("me") == "b greets me"
    assert Service.hello(a, "x") == "a greets x"  # unbound use
    assert a.limited() == "a served"
    assert b.limited() == "b is busy"  # the handler got b as its self
    assert Service.make("c").name == "c"
    assert Service.static(1) == 2 and a.static(2) == 3
    assert await a.ahello() == "async a"
    names = Service.engine.resources()
    assert f"{__name__}.Service.hello" in names
    assert f"{__name__}.Service.make" in names
    assert f"{__name__}.Service.ahello" in names
    assert Service.engine.stats(f"{__name__}.Service.hello").total_pass == 3


def test_rate_limiter_sync_wrapper_sleeps_on_the_clock() -> None:
    g = engine({"resource": "r", "count": 10, "control": "rate_limiter"})
    c = clock(g)
    started: list[int] = []

    @g.guard("r")
    def f() -> None:
        started.append(c.now_ms())

    for _ in range(3):
        f()
    assert started == [0, 100, 200]


async def test_rate_limiter_async_wrapper_awaits() -> None:
    g = engine({"resource": "r", "count": 10, "control": "rate_limiter"})
    c = clock(g)
    started: list[int] = []
    other: list[int] = []

    @g.guard("r")
    async def f() -> None:
        started.append(c.now_ms())

    async def bystander() -> None:
        other.append(c.now_ms())

    await f()
    task = asyncio.create_task(bystander())
    await f()  # waits 100 ms by awaiting: the bystander runs meanwhile
    assert other == [100]
    await task
    await asyncio.gather(f(), f())
    # Two concurrent callers at 100: one queued to 200, the other to 300. (A ManualClock
    # moves at once for the first sleeper, so both resume at 300.)
    assert c.now_ms() == 300
    assert started[:2] == [0, 100] and len(started) == 4


def test_zero_threshold_blocks_every_call() -> None:
    g = engine({"resource": "r", "count": 0})

    @g.guard("r", block_handler=lambda error: None)
    def f() -> str:
        return "ran"

    for t in (0, 5000, 10**6):
        clock(g).set(t)
        assert f() is None
    assert g.stats("r").total_pass == 0


def test_handler_exceptions_propagate() -> None:
    g = engine({"resource": "r", "count": 0})

    def handler(error: BlockError) -> None:
        raise RuntimeError("handler failed") from error

    @g.guard("r", block_handler=handler)
    def f() -> None:
        pass

    with pytest.raises(RuntimeError, match="handler failed"):
        f()


def test_inbound_wrapper_feeds_the_inbound_node() -> None:
    g = engine()

    @g.guard("r", inbound=True)
    def f() -> None:
        pass

    f()
    assert g.inbound_stats().total_pass == 1


def test_module_level_guard_uses_the_default_engine() -> None:
    @guard_pkg.guard("test.wrap.default")
    def f() -> int:
        return 1

    @guard_pkg.guard
    def g() -> int:
        return 2

    assert f() + g() == 3
    stats = default_engine().stats("test.wrap.default")
    assert stats.total_pass >= 1
    assert f"{__name__}.test_module_level_guard_uses_the_default_engine.<locals>.g" in (
        default_engine().resources()
    )


def test_wrapper_carries_the_function_attributes() -> None:
    g = engine()

    def tagged(x: int) -> int:
        return x

    tagged.route = "/x"  # type: ignore[attr-defined]
    wrapped = g.guard(tagged)
    assert wrapped(1) == 1
    assert wrapped.route == "/x"
    assert wrapped.__qualname__ == tagged.__qualname__
    assert wrapped.__module__ == __name__


def test_static_origin_must_be_a_string_or_callable() -> None:
    g = engine()
    with pytest.raises(TypeError, match="origin must be a str, a callable or None"):
        g.guard("r", origin=5)


def test_callable_origin_returning_a_non_string_is_refused() -> None:
    g = engine({"resource": "r", "count": 1, "limit_app": "7"})

    @g.guard("r", origin=lambda: 7)
    def f() -> str:
        return "ran"

    with pytest.raises(TypeError):
        f()


async def test_async_block_raises_when_awaited() -> None:
    g = engine({"resource": "r", "count": 0})

    @g.guard("r")
    async def f() -> str:
        return "ran"

    coro = f()  # calling only builds the coroutine
    assert g.stats("r").total_block == 0
    with pytest.raises(FlowBlocked):
        await coro
    assert g.stats("r").total_block == 1


async def test_default_name_of_partials_and_callable_objects() -> None:
    # Regression: these have no __qualname__, and decorating them raised AttributeError.
    g = engine()

    def add(a: int, b: int) -> int:
        return a + b

    class Doubler:
        def __call__(self, x: int) -> int:
            return 2 * x

    async def aadd(a: int, b: int) -> int:
        return a + b

    assert g.guard(functools.partial(add, 1))(2) == 3
    assert g.guard(functools.partial(functools.partial(add, 1), 2))() == 3
    assert g.guard(Doubler())(4) == 8
    assert await g.guard(functools.partial(aadd, 1))(5) == 6
    local = f"{__name__}.test_default_name_of_partials_and_callable_objects.<locals>"
    assert g.resources() == [f"{local}.Doubler", f"{local}.aadd", f"{local}.add"]
    assert g.stats(f"{local}.add").total_pass == 2


async def test_async_concurrency_is_held_until_the_coroutine_ends() -> None:
    g = engine({"resource": "r", "count": 1, "grade": "concurrency"})
    gate = asyncio.Event()

    @g.guard("r", block_handler=lambda error: "busy")
    async def slow() -> str:
        await gate.wait()
        return "done"

    first = asyncio.create_task(slow())
    await asyncio.sleep(0)  # first is now inside, waiting on the gate
    assert g.stats("r").concurrency == 1
    assert await slow() == "busy"
    gate.set()
    assert await first == "done"
    assert await slow() == "done"
    s = g.stats("r")
    assert (s.total_pass, s.total_block, s.concurrency) == (2, 1, 0)


async def test_cancelled_coroutine_exits_its_entry_without_an_exception() -> None:
    g = engine()
    started = asyncio.Event()
    fallbacks: list[BaseException] = []

    @g.guard("r", fallback=lambda error: fallbacks.append(error))
    async def forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = asyncio.create_task(forever())
    await started.wait()
    assert g.stats("r").concurrency == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    s = g.stats("r")
    assert (s.concurrency, s.total_success, s.total_exception) == (0, 1, 0)
    assert fallbacks == []  # cancellation is no business exception


async def test_cancelled_while_queued_books_no_pass() -> None:
    g = engine({"resource": "r", "count": 1, "control": "rate_limiter", "max_queue_ms": 5000})
    c = clock(g)

    @g.guard("r")
    async def f() -> None:
        pass

    await f()
    # A clock whose async sleep never returns stands in for a long queueing wait.
    hold = asyncio.Event()

    async def stuck(ms: float) -> None:
        await hold.wait()

    c.asleep = stuck  # type: ignore[method-assign]
    task = asyncio.create_task(f())
    await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    s = g.stats("r")
    assert (s.total_pass, s.concurrency, s.total_block) == (1, 0, 0)


def test_threads_balance_concurrency() -> None:
    import sys
    import threading

    g = engine({"resource": "r", "count": 3, "grade": "concurrency"})

    @g.guard("r", block_handler=lambda error: False)
    def f() -> bool:
        return True

    results: list[int] = []

    def run() -> None:
        results.append(sum(1 for _ in range(3000) if f()))

    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        threads = [threading.Thread(target=run) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
    s = g.stats("r")
    assert s.concurrency == 0
    assert s.total_pass == sum(results) and s.total_pass + s.total_block == 12_000


async def test_positional_arguments_feed_param_flow_rules() -> None:
    g = Guard(clock=ManualClock(0))
    g.load_rules(
        {
            "param_flow": [
                {"resource": "items.get", "param_index": 0, "count": 1},
                {"resource": "items.aget", "param_index": 1, "count": 1},
            ]
        }
    )

    @g.guard("items.get", block_handler=lambda sku, error: f"blocked {sku} {error.reason}")
    def get(sku: str) -> str:
        return f"got {sku}"

    assert get("hot") == "got hot"
    assert get("hot") == "blocked hot param_flow"
    assert get("cold") == "got cold"  # another value has its own count

    @g.guard("items.aget")
    async def aget(shop: str, sku: str) -> str:
        return sku

    assert await aget("s", "a") == "a"
    assert await aget("s", "b") == "b"  # index 1 is what counts
    with pytest.raises(BlockError) as info:
        await aget("t", "a")
    assert info.value.reason == "param_flow"
    # Entries take them from args=.
    with pytest.raises(BlockError):
        g.enter("items.get", args=("hot",))
    g.enter("items.get", args=("other",)).exit()


def test_every_call_form_reaches_the_function_alike() -> None:
    # The compiled wrapper takes calls without keywords by vectorcall (no keyword dict) and
    # the rest through the usual path: both must pass the same arguments.
    g = engine()

    @g.guard("r")
    def f(a: int, b: int = 2, *, c: int = 3) -> tuple[int, int, int]:
        return (a, b, c)

    class Holder:
        m = g.guard("r")(lambda self, x, y=0: (self, x, y))

    h = Holder()
    assert f(1) == (1, 2, 3)
    assert f(1, 5) == (1, 5, 3)
    assert f(1, c=9) == (1, 2, 9)
    assert f(a=4) == (4, 2, 3)
    assert f(*[6, 7]) == (6, 7, 3)
    assert f(**{"a": 8, "c": 0}) == (8, 2, 0)
    assert f(0, **{}) == (0, 2, 3)
    assert functools.partial(f, 1)(c=2) == (1, 2, 2)
    assert h.m(1) == (h, 1, 0) and h.m(1, y=2) == (h, 1, 2)
    with pytest.raises(TypeError):
        f()  # the function's own error, after the entry
    with pytest.raises(TypeError):
        f(1, d=4)
    s = g.stats("r")
    # Every call completed (success counts completions, as in Sentinel); two were traced.
    assert (s.total_pass, s.total_success, s.total_exception, s.concurrency) == (12, 12, 2, 0)


def test_entries_kept_by_the_caller_survive_the_reuse_of_freed_ones() -> None:
    # The compiled twin recycles the memory of freed entries: one a caller still holds must
    # never be handed out again, however many are built and freed meanwhile.
    g = engine({"resource": "busy", "count": 1e9})
    kept = [g.enter(f"kept.{i}") for i in range(200)]
    f = g.guard("busy")(module_level)
    for i in range(5_000):
        assert f(i) == 2 * i
        with g.entry("busy"):
            pass
    for i, e in enumerate(kept):
        assert e.resource == f"kept.{i}"
        assert repr(e) == f"<Entry kept.{i} entered>"
        e.exit()
    assert all(g.stats(f"kept.{i}").concurrency == 0 for i in range(200))
    assert g.stats("busy").total_pass == 10_000 and g.stats("busy").concurrency == 0
