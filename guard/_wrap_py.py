"""The ``@guard`` wrappers (pure-Python truth of the twin).

A wrapper runs the entry path inline: check, (wait), book the pass, call, book the exit.
A refused call never raises inside the wrapper when a ``block_handler`` or ``fallback`` is
given: the ``BlockError`` goes straight to the handler, so a rejected call costs about what
a passed one does.

The compiled twin also answers the vectorcall protocol (``enable_vectorcall`` in
``_wrap_c.pxd``): a call without keywords reaches ``_call`` with no keyword dict built,
copied and freed, which cost about a tenth of a guarded call.
"""

from __future__ import annotations

import functools
import inspect
from types import MethodType
from typing import Any

import cython

if cython.compiled:
    from cython.cimports.guard._chain_c import Core, Entry, Resource, new_entry
else:
    from guard.chain import Core, Entry, Resource, new_entry

__all__ = ["AsyncGuardedFunction", "GuardedFunction"]

ERROR_KWNAMES = ("error",)  # the compiled twin's call_with_error passes error= by name

if not cython.compiled:

    def call_with_error(handler: Any, args: tuple[Any, ...], error: Any) -> Any:
        return handler(*args, error=error)

    def enable_vectorcall(fn: Any) -> None:
        pass  # a pure-Python object has only the usual call path


class GuardedFunction:
    """A plain function guarded as one resource."""

    def __init__(
        self,
        func: Any,
        core: Core,
        res: Resource,
        origin: Any,
        inbound: bool,
        block_handler: Any,
        fallback: Any,
        trace_types: tuple[type[BaseException], ...],
        ignore_types: tuple[type[BaseException], ...],
    ) -> None:
        self.func = func
        self.core = core
        self.res = res
        self.inbound = inbound
        self.block_handler = block_handler
        self.fallback = fallback
        self.trace_types = trace_types
        self.ignore_types = ignore_types
        self.origin_fn = origin if callable(origin) else None
        self.origin = None if callable(origin) else origin
        functools.update_wrapper(self, func)
        enable_vectorcall(self)

    def __get__(self, obj: Any, objtype: Any) -> Any:
        # Behave like a function on classes: bind to the instance.
        if obj is None:
            return self
        return MethodType(self, obj)

    def _entry(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Entry:
        origin = self.origin
        if self.origin_fn is not None:
            origin = self.origin_fn(*args, **(kwargs or {}))
            if origin is not None and not isinstance(origin, str):
                raise TypeError(
                    f"{self.res.name}: origin callable must return a str or None, "
                    f"got {type(origin).__name__}"
                )
        e: Entry = new_entry(self.core, self.res, origin, args, 1, self.inbound)
        e.trace_types = self.trace_types
        e.ignore_types = self.ignore_types
        return e

    def _blocked(self, error: Any, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
        handler = self.block_handler if self.block_handler is not None else self.fallback
        if handler is None:
            raise error
        if not kwargs:  # the common case: no keyword dict to merge
            return call_with_error(handler, args, error)
        return handler(*args, error=error, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._call(args, kwargs)

    def _call(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Any:
        """One guarded call; ``kwargs`` is None when the call had no keywords."""
        e: Entry = self._entry(args, kwargs)
        error = e.check()
        if error is not None:
            return self._blocked(error, args, kwargs)
        if e.wait_ms > 0.0:
            self.core.clock.sleep(e.wait_ms)
        e.passed()
        try:
            if kwargs:
                result = self.func(*args, **kwargs)
            else:  # no empty dict to copy and unpack
                result = self.func(*args)
        except BaseException as exc:
            if e.traceable(exc):
                e.error = exc
                e.exit()
                if self.fallback is not None:
                    return self.fallback(*args, error=exc, **(kwargs or {}))
                raise
            e.exit()
            raise
        e.exit()
        return result

    def __repr__(self) -> str:
        return f"<guarded {self.res.name}>"


class AsyncGuardedFunction(GuardedFunction):
    """An ``async def`` function guarded as one resource; RT runs to the coroutine's end."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Let asyncio.iscoroutinefunction() recognise the wrapper as async, as for the original.
        self._is_coroutine = _coroutine_marker()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._run(args, kwargs)

    async def _run(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        e: Entry = self._entry(args, kwargs)
        error = e.check()
        if error is not None:
            return await _maybe_await(self._blocked(error, args, kwargs))
        if e.wait_ms > 0.0:
            await self.core.clock.asleep(e.wait_ms)
        e.passed()
        try:
            result = await self.func(*args, **kwargs)
        except BaseException as exc:
            if e.traceable(exc):
                e.error = exc
                e.exit()
                if self.fallback is not None:
                    return await _maybe_await(self.fallback(*args, error=exc, **kwargs))
                raise
            e.exit()
            raise
        e.exit()
        return result


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


def _coroutine_marker() -> Any:
    import asyncio.coroutines

    return getattr(asyncio.coroutines, "_is_coroutine", None)
