"""Send one command to every Redlock master concurrently (asyncio) and read replies as they come.

Commands go straight onto connections taken from each client's pool, so redis-py's client-side
retry (which re-sends a timed-out command with backoff, turning a 100 ms per-node timeout into
seconds of stall) never runs. The per-node timeout is the round's deadline: a master that has
not answered by then is not waited for. Its command is not cancelled either (cancelling would
drop the connection with the command maybe already executed): it finishes in the background
and gives its connection back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

from redis.exceptions import NoScriptError

from locks._core import Plan

__all__ = ["drain", "fanout", "later"]

Command = tuple[Any, ...]
_BACKGROUND: set[asyncio.Task[Any]] = set()


async def _one(client: Any, item: Plan | Command) -> Any:
    pool = client.connection_pool
    conn = await pool.get_connection()
    try:
        if isinstance(item, Plan):
            args = (len(item.keys), *item.keys, *item.args)
            await conn.send_command("EVALSHA", item.script.sha, *args)
            try:
                return await conn.read_response()
            except NoScriptError:  # first use of the script on this server: EVAL loads it
                await conn.send_command("EVAL", item.script.body, *args)
                return await conn.read_response()
        await conn.send_command(*item)
        return await conn.read_response()
    except Exception as exc:
        return exc
    finally:
        await pool.release(conn)


async def fanout(
    clients: list[Any],
    items: Sequence[Plan | Command | None],
    timeout: float,
    done: Callable[[list[Any]], bool] | None = None,
    wait: list[bool] | None = None,
) -> tuple[list[Any], list[asyncio.Task[Any] | None]]:
    """Send ``items[i]`` to ``clients[i]`` (None skips it) and collect the replies.

    :param timeout: the round's deadline from now: the per-node timeout.
    :param done: called after each reply; True ends the round early.
    :param wait: per master, False to send without waiting for the reply.
    :returns: per master the reply, its exception, or None when it did not answer in time;
        and the per-master tasks (late ones keep running in the background).
    """
    loop = asyncio.get_running_loop()
    tasks: list[asyncio.Task[Any] | None] = [
        None if item is None else loop.create_task(_one(client, item))
        for client, item in zip(clients, items)
    ]
    replies: list[Any] = [None] * len(clients)
    index = {t: i for i, t in enumerate(tasks) if t is not None}
    pending = {t for i, t in enumerate(tasks) if t is not None and (wait is None or wait[i])}
    end = loop.time() + timeout
    try:
        while pending:
            remaining = end - loop.time()
            if remaining <= 0:
                break
            finished, pending = await asyncio.wait(
                pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for t in finished:
                replies[index[t]] = t.result()
            if done is not None and done(replies):
                break
    finally:
        for t in index:
            if not t.done():
                _BACKGROUND.add(t)
                t.add_done_callback(_BACKGROUND.discard)
    for t, i in index.items():  # replies that came in meanwhile, unwaited ones included
        if replies[i] is None and t.done() and not t.cancelled():
            replies[i] = t.result()
    return replies, tasks


def later(first: asyncio.Task[Any], client: Any, item: Plan | Command) -> None:
    """Send ``item`` to ``client`` once ``first`` (a late command to it) has finished."""

    async def chain() -> None:
        await asyncio.wait({first})
        await _one(client, item)

    task = asyncio.get_running_loop().create_task(chain())
    _BACKGROUND.add(task)
    task.add_done_callback(_BACKGROUND.discard)


async def drain(timeout: float = 2.0) -> None:
    """Wait for the commands still finishing in the background (tests, shutdown)."""
    loop = asyncio.get_running_loop()
    mine = {t for t in _BACKGROUND if t.get_loop() is loop}
    if mine:
        await asyncio.wait(mine, timeout=timeout)
