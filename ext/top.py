"""``guard top --admin URL``: a live terminal dashboard of a sidecar's ``/api/stats``.

Polls the admin API every second and shows, per resource, pass/block/success/exception QPS,
average RT, concurrency, breaker state and a sparkline of the last 60 s of pass QPS,
busiest first. Keys: ``s`` next sort column, ``r`` reverse, ``/`` filter by name (type,
Enter to keep, Esc to clear), ``q`` or Ctrl-C to quit. ``--once`` prints one frame as text
and exits (scripts, tests); without a terminal a frame is printed every interval.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import json
import select
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

__all__ = ["SORT_KEYS", "TopState", "add_arguments", "fetch_stats", "render", "run", "sparkline"]

SORT_KEYS = ("traffic", "name", "block", "rt", "exception", "concurrency")
HISTORY = 60
_BARS = "▁▂▃▄▅▆▇█"
_BREAKER_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


class AdminUnreachableError(Exception):
    """The admin API did not answer (or answered something that is not stats JSON)."""


def fetch_stats(admin: str, timeout: float = 2.0) -> dict[str, dict[str, Any]]:
    """GET ``admin``/api/stats.

    :raises AdminUnreachableError: with a message fit for the user.
    """
    url = admin.rstrip("/") + "/api/stats"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            data = json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        raise AdminUnreachableError(f"{url} answered {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise AdminUnreachableError(f"cannot reach {url}: {reason}") from None
    except ValueError:
        raise AdminUnreachableError(f"{url} did not answer JSON; is it a guard admin?") from None
    if not isinstance(data, dict):
        raise AdminUnreachableError(f"{url} did not answer a stats object")
    return data


def sparkline(values: Any, width: int = HISTORY) -> str:
    """Unicode bars for ``values`` (the last ``width``), scaled to their maximum."""
    vals = list(values)[-width:]
    top = max(vals, default=0)
    if top <= 0:
        return _BARS[0] * len(vals)
    return "".join(_BARS[min(7, int(v / top * 7.999))] for v in vals)


class TopState:
    """Latest stats, pass-QPS history, sort and filter."""

    def __init__(self, admin: str, sort: str = "traffic", filter_text: str = "") -> None:
        self.admin = admin
        self.sort = sort
        self.reverse = False
        self.filter = filter_text
        self.editing = False  # typing a filter
        self.stats: dict[str, dict[str, Any]] = {}
        self.history: dict[str, collections.deque[float]] = {}
        self.error: str | None = None
        self.updated = 0.0

    def poll(self) -> None:
        """Fetch once; on failure keep the last figures and remember the error."""
        try:
            stats = fetch_stats(self.admin)
        except AdminUnreachableError as exc:
            self.error = str(exc)
            return
        self.error = None
        self.stats = stats
        self.updated = time.time()
        for name, s in stats.items():
            hist = self.history.setdefault(name, collections.deque(maxlen=HISTORY))
            hist.append(float(s.get("pass_qps", 0.0)))

    def key(self, ch: str) -> bool:
        """Apply one key press; False means quit."""
        if self.editing:
            if ch in ("\r", "\n"):
                self.editing = False
            elif ch == "\x1b":
                self.editing, self.filter = False, ""
            elif ch in ("\x7f", "\b"):
                self.filter = self.filter[:-1]
            elif ch.isprintable():
                self.filter += ch
            return True
        if ch in ("q", "Q", "\x03"):
            return False
        if ch == "s":
            self.sort = SORT_KEYS[(SORT_KEYS.index(self.sort) + 1) % len(SORT_KEYS)]
        elif ch == "r":
            self.reverse = not self.reverse
        elif ch == "/":
            self.editing, self.filter = True, ""
        elif ch == "\x1b":
            self.filter = ""
        return True

    def rows(self) -> list[tuple[str, dict[str, Any]]]:
        items = [(n, s) for n, s in self.stats.items() if self.filter.lower() in n.lower()]
        by = {
            "traffic": lambda i: -(i[1].get("pass_qps", 0) + i[1].get("block_qps", 0)),
            "name": lambda i: i[0],
            "block": lambda i: -i[1].get("block_qps", 0),
            "rt": lambda i: -i[1].get("avg_rt_ms", 0),
            "exception": lambda i: -i[1].get("exception_qps", 0),
            "concurrency": lambda i: -i[1].get("concurrency", 0),
        }[self.sort]
        items.sort(key=lambda i: (by(i), i[0]), reverse=self.reverse)
        return items


def render(state: TopState) -> Group:
    """The dashboard for the current state (a rich renderable)."""
    table = Table(expand=True, header_style="bold", pad_edge=False)
    table.add_column("resource", overflow="fold")
    for name in ("pass/s", "block/s", "ok/s", "exc/s", "avg rt ms", "conc"):
        table.add_column(name, justify="right")
    table.add_column("breaker")
    table.add_column("pass/s, last 60 s", no_wrap=True)
    for name, s in state.rows():
        breaker = str(s.get("breaker_state", "closed"))
        block = float(s.get("block_qps", 0))
        table.add_row(
            name,
            f"{s.get('pass_qps', 0):.0f}",
            Text(f"{block:.0f}", style="red" if block else ""),
            f"{s.get('success_qps', 0):.0f}",
            f"{s.get('exception_qps', 0):.0f}",
            f"{s.get('avg_rt_ms', 0):.1f}",
            f"{s.get('concurrency', 0)}",
            Text(breaker, style=_BREAKER_STYLE.get(breaker, "")),
            Text(sparkline(state.history.get(name, ())), style="cyan"),
        )
    arrow = "desc" if not state.reverse else "asc"
    shown_filter = ""
    if state.filter or state.editing:
        shown_filter = f"filter: {state.filter}{'_' if state.editing else ''}  "
    head = Text.assemble(
        ("guard top ", "bold"),
        f"{state.admin}  sort: {state.sort} ({arrow})  ",
        shown_filter,
        ("keys: s sort  r reverse  / filter  q quit", "dim"),
    )
    parts: list[Any] = [head, table]
    if state.error:
        parts.append(Text(f"admin unreachable: {state.error} (showing last figures)", "bold red"))
    elif not state.stats:
        parts.append(Text("no resources yet: send traffic through the sidecar", "dim"))
    return Group(*parts)


def render_text(state: TopState, width: int = 120) -> str:
    """One frame as plain text."""
    buf = io.StringIO()
    Console(file=buf, width=width, color_system=None, force_terminal=False).print(render(state))
    return buf.getvalue()


@contextlib.contextmanager
def _keys() -> Iterator[Any]:
    """Yield a function returning the next key press (or None) with the tty in cbreak mode."""
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def read(timeout: float) -> str | None:
        ready, _, _ = select.select([fd], [], [], timeout)
        return sys.stdin.read(1) if ready else None

    try:
        yield read
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--admin", default="http://127.0.0.1:15001", help="admin API base URL (default %(default)s)"
    )
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    parser.add_argument("--sort", choices=SORT_KEYS, default="traffic", help="initial sort")
    parser.add_argument("--filter", default="", help="show resources whose name contains this")
    parser.add_argument("--once", action="store_true", help="print one frame as text and exit")
    parser.add_argument("--iterations", type=int, default=0, help="stop after N polls (0: never)")


def run(args: argparse.Namespace) -> int:
    state = TopState(args.admin, args.sort, args.filter)
    state.poll()
    if state.error:
        print(f"guard top: {state.error}", file=sys.stderr)
        print(
            "  Is the sidecar running? Its admin address is `sidecar.admin` in guard.yaml "
            "(default 127.0.0.1:15001); pass it with --admin http://HOST:PORT",
            file=sys.stderr,
        )
        return 1
    if args.once:
        sys.stdout.write(render_text(state))
        return 0
    interactive = sys.stdin.isatty() and sys.stdout.isatty()
    polls = 1
    try:
        if not interactive:
            while True:
                sys.stdout.write(render_text(state))
                sys.stdout.flush()
                if args.iterations and polls >= args.iterations:
                    return 0
                time.sleep(args.interval)
                state.poll()
                polls += 1
        with _keys() as read_key, Live(render(state), auto_refresh=False, screen=True) as live:
            next_poll = time.monotonic() + args.interval
            while not (args.iterations and polls >= args.iterations and not state.editing):
                ch = read_key(max(0.0, next_poll - time.monotonic()))
                if ch is not None and not state.key(ch):
                    return 0
                if time.monotonic() >= next_poll:
                    state.poll()
                    polls += 1
                    next_poll += args.interval
                live.update(render(state), refresh=True)
    except KeyboardInterrupt:
        return 0
    return 0
