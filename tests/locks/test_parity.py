"""The sync and asyncio fronts expose the same public names and signatures."""

from __future__ import annotations

import inspect

import pytest

import locks
import locks.aio


def _public(cls: type) -> dict[str, object]:
    return {n: inspect.getattr_static(cls, n) for n in dir(cls) if not n.startswith("_")}


def _shape(fn: object) -> list[tuple[str, object, object]]:
    sig = inspect.signature(fn)  # type: ignore[arg-type]
    return [(p.name, p.kind, p.default) for p in sig.parameters.values()]


@pytest.mark.parametrize("name", ["RedisLock", "Redlock"])
def test_same_public_names_and_signatures(name: str) -> None:
    sync_cls, async_cls = getattr(locks, name), getattr(locks.aio, name)
    sync_api, async_api = _public(sync_cls), _public(async_cls)
    assert sync_api.keys() == async_api.keys()
    assert _shape(sync_cls.__init__) == _shape(async_cls.__init__)
    for attr, s in sync_api.items():
        a = async_api[attr]
        assert type(s) is type(a), attr
        if inspect.isfunction(s):
            assert _shape(s) == _shape(a), attr
            assert not inspect.iscoroutinefunction(s), attr
            assert inspect.iscoroutinefunction(a), attr
    for dunder in ("__enter__", "__exit__"):
        assert hasattr(sync_cls, dunder)
    for dunder in ("__aenter__", "__aexit__"):
        assert hasattr(async_cls, dunder)


def test_all_lists_match_spec() -> None:
    assert locks.__all__ == [
        "RedisLock",
        "Redlock",
        "LockError",
        "LockNotOwnedError",
        "LockTimeoutError",
    ]
    assert locks.aio.__all__ == ["RedisLock", "Redlock"]
    assert locks.aio.LockTimeoutError is locks.LockTimeoutError
    assert issubclass(locks.LockNotOwnedError, locks.LockError)
    assert issubclass(locks.LockTimeoutError, locks.LockError)
    assert issubclass(locks.LockTimeoutError, TimeoutError)
