"""Watch one config file and call back when its content may have changed.

The parent directory is watched, not the file: editors and config managers often write a
temporary file and rename it over the original (vim, kubectl, Ansible), which replaces the
inode a file watch would be attached to. Events are filtered to the file's name. Without
watchfiles (or with ``poll_interval`` set) the file's (inode, size, mtime) is polled.
The callback decides whether anything really changed (it compares content hashes).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["watch_file"]

log = logging.getLogger("guard.sources.file")


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


async def watch_file(
    path: str | os.PathLike[str],
    on_change: Callable[[], Any],
    stop: asyncio.Event,
    *,
    poll_interval: float | None = None,
) -> None:
    """Call ``on_change()`` after each change of ``path`` until ``stop`` is set.

    :param path: the file to watch.
    :param on_change: called (in the event loop) after a batch of changes.
    :param stop: ends the watch.
    :param poll_interval: poll every this many seconds instead of using OS events.
    """
    target = Path(path).absolute()
    if poll_interval is None:
        try:
            import watchfiles
        except ImportError:
            log.warning("watchfiles is not installed; polling %s every second", target)
            poll_interval = 1.0
    if poll_interval is not None:
        await _poll(target, on_change, stop, poll_interval)
        return
    name = target.name

    def same_file(_change: Any, changed: str) -> bool:
        return os.path.basename(changed) == name

    async for _changes in watchfiles.awatch(
        target.parent,
        watch_filter=same_file,
        stop_event=stop,
        step=50,
        debounce=400,
        recursive=False,
    ):
        if target.exists():
            on_change()
        # A delete without a re-create: keep the rules in force and wait for the file.


async def _poll(
    target: Path, on_change: Callable[[], Any], stop: asyncio.Event, every: float
) -> None:
    last = _signature(target)
    while not stop.is_set():
        try:
            await asyncio.wait_for(stop.wait(), every)
            return
        except TimeoutError:
            pass
        now = _signature(target)
        if now != last and now is not None:
            on_change()
        last = now
