"""``guard demo``: a sidecar in front of three demo instances, under load, shown live.

Zero setup: the demo upstream (instances ``fast`` weight 2, ``slow`` and ``flaky``), the
sidecar and its admin API start on free loopback ports (see ``ext.demo_parts`` for the
schedule of failures), and three request streams go through the proxy:

- ``demo.search`` offered 60/s against a QPS 40 limit: 40 pass, 20 are refused (429);
- ``demo.checkout`` offered 60/s against a warm-up limit of 40: starts near 13/s, ramps up;
- ``demo.report`` offered 25/s with an error-ratio breaker: opens during the outage,
  probes, and closes when it ends.

The load balancer's picks show smooth weighted round robin, ``flaky`` being ejected (for
growing intervals) and coming back under slow start. With a terminal the view is a live
rich layout; without one, a text summary each second. Both end with a table of totals.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from rich.console import Console, Group
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from ext.demo_parts import INSTANCES, OFFERED, RULE_NOTES, DemoWorld

__all__ = ["Sampler", "add_arguments", "run"]

_BREAKER_STYLE = {"closed": "green", "open": "bold red", "half_open": "yellow"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=int, default=10, help="how long to run (default 10)")
    parser.add_argument(
        "--plain", action="store_true", help="print a text summary each second, even on a terminal"
    )


def _read(world: DemoWorld) -> dict[str, Any]:
    """One reading of the sidecar's counters (runs on the demo loop: no races)."""
    sc = world.sidecar
    guard = sc.guard
    res = {}
    for name in OFFERED:
        c = sc.metrics.resources.get(name)
        res[name] = {
            "pass": c.passes if c else 0,
            "block": sum(c.blocks.values()) if c else 0,
            "exc": c.exceptions if c else 0,
            "done": c.successes if c else 0,
            "rt": c.rt_sum if c else 0.0,
            "conc": int(guard.stats(name).concurrency),
            "breaker": str(guard.breaker_state(name)),
        }
    return {"t": world.now(), "res": res, "ups": sc.proxy.balancer.snapshot()}


class Sampler:
    """Readings over time; per-second rates and state-change events from them."""

    def __init__(self, world: DemoWorld) -> None:
        self.world = world
        self.readings: list[dict[str, Any]] = []
        self.events: list[str] = []

    def sample(self) -> dict[str, Any]:
        async def read() -> dict[str, Any]:
            return _read(self.world)

        import asyncio

        reading = asyncio.run_coroutine_threadsafe(read(), self.world.loop).result(5)
        if self.readings:
            self._events(self.readings[-1], reading)
        self.readings.append(reading)
        return reading

    def _events(self, old: dict[str, Any], new: dict[str, Any]) -> None:
        t = new["t"]
        for name, r in new["res"].items():
            before = old["res"][name]["breaker"]
            if r["breaker"] != before:
                self.events.append(f"{t:5.1f}s  {name} breaker {before} -> {r['breaker']}")
        for a, b in zip(old["ups"], new["ups"], strict=False):
            name = self.world.upstream_name(b["url"])
            if b["ejections"] > a["ejections"]:
                if a["ejected_for_sec"] > 0:  # came back and failed again in between
                    self.events.append(f"{t:5.1f}s  {name} back in, slow start ramp")
                self.events.append(
                    f"{t:5.1f}s  {name} ejected for {b['ejection_sec']:g}s "
                    f"(failure run; ejection #{b['ejections']})"
                )
            elif a["ejected_for_sec"] > 0 and b["ejected_for_sec"] == 0:
                self.events.append(f"{t:5.1f}s  {name} back in, slow start ramp")

    def rates(self, window: float = 1.0) -> dict[str, Any]:
        """Per-second figures over the last ``window`` seconds of readings."""
        new = self.readings[-1]
        old = next(
            (r for r in reversed(self.readings[:-1]) if new["t"] - r["t"] >= window * 0.9),
            self.readings[0],
        )
        dt = max(1e-6, new["t"] - old["t"])
        res = {}
        for name, r in new["res"].items():
            o = old["res"][name]
            done = r["done"] - o["done"]
            res[name] = {
                "pass": (r["pass"] - o["pass"]) / dt,
                "block": (r["block"] - o["block"]) / dt,
                "exc": (r["exc"] - o["exc"]) / dt,
                "rt_ms": (r["rt"] - o["rt"]) / done * 1000 if done else 0.0,
                "conc": r["conc"],
                "breaker": r["breaker"],
            }
        ups = []
        for a, b in zip(old["ups"], new["ups"], strict=False):
            ups.append({**b, "picks_s": (b["picks"] - a["picks"]) / dt})
        return {"t": new["t"], "res": res, "ups": ups}


def _state(u: dict[str, Any]) -> Text:
    if u["ejected_for_sec"] > 0:
        return Text(f"ejected {u['ejected_for_sec']:.1f}s", "bold red")
    if u["weight"] and u["effective_weight"] < u["weight"]:
        return Text(f"slow start {u['effective_weight'] / u['weight']:.0%}", "yellow")
    return Text("up", "green")


def _bar(fraction: float, width: int = 12) -> str:
    full = max(0, min(width, round(fraction * width)))
    return "█" * full + "·" * (width - full)


def render(world: DemoWorld, rates: dict[str, Any], events: list[str], seconds: int) -> Group:
    head = Text.assemble(
        ("guard demo ", "bold"),
        f"t={rates['t']:4.1f}s of {seconds}s   proxy http://{world.proxy_address[0]}:"
        f"{world.proxy_address[1]}   dashboard http://{world.admin_address[0]}:"
        f"{world.admin_address[1]}/dashboard",
    )
    res = Table(title="resources (per second)", expand=True, title_justify="left")
    for col in ("resource", "rule", "offered", "pass", "block", "exc", "avg rt ms", "conc"):
        res.add_column(col, justify="left" if col in ("resource", "rule") else "right")
    res.add_column("breaker")
    for name, r in rates["res"].items():
        res.add_row(
            name,
            RULE_NOTES[name],
            str(OFFERED[name][2]),
            f"{r['pass']:.0f}",
            Text(f"{r['block']:.0f}", "red" if r["block"] >= 0.5 else ""),
            Text(f"{r['exc']:.0f}", "red" if r["exc"] >= 0.5 else ""),
            f"{r['rt_ms']:.1f}",
            str(r["conc"]),
            Text(r["breaker"], _BREAKER_STYLE.get(r["breaker"], "")),
        )
    ups = Table(title="load balancer (smooth weighted round robin)", expand=True)
    ups.title_justify = "left"
    for col in ("instance", "weight", "effective weight", "picks/s", "in flight", "failures"):
        ups.add_column(col, justify="left" if col in ("instance", "effective weight") else "right")
    ups.add_column("state")
    for u in rates["ups"]:
        frac = u["effective_weight"] / u["weight"] if u["weight"] else 0.0
        ups.add_row(
            world.upstream_name(u["url"]),
            f"{u['weight']:g}",
            f"{_bar(frac)} {u['effective_weight']:.2f}",
            f"{u['picks_s']:.0f}",
            str(u["active"]),
            str(u["failures"]),
            _state(u),
        )
    log = Text("\n".join(events[-8:]) or "waiting for something to happen...")
    return Group(head, res, ups, Panel(log, title="events", title_align="left"))


def _line(rates: dict[str, Any], world: DemoWorld) -> str:
    parts = [f"t={rates['t']:4.1f}s"]
    for name, r in rates["res"].items():
        short = name.split(".", 1)[-1]
        parts.append(
            f"{short}: pass {r['pass']:3.0f} block {r['block']:3.0f} exc {r['exc']:3.0f} "
            f"rt {r['rt_ms']:5.1f}ms {r['breaker']}"
        )
    picks = " ".join(
        f"{world.upstream_name(u['url'])} {u['picks_s']:.0f}/s"
        + (" EJECTED" if u["ejected_for_sec"] > 0 else "")
        + (
            f" w={u['effective_weight']:.2f}"
            if u["weight"] and 0 < u["effective_weight"] < u["weight"]
            else ""
        )
        for u in rates["ups"]
    )
    return " | ".join(parts) + f" | lb: {picks}"


def final_table(world: DemoWorld, sampler: Sampler) -> Group:
    last = sampler.readings[-1]
    res = Table(title="totals", title_justify="left")
    for col in ("resource", "passed", "blocked", "exceptions", "avg rt ms", "answers seen"):
        res.add_column(col, justify="left" if col in ("resource", "answers seen") else "right")
    for name, r in last["res"].items():
        done = r["done"]
        statuses = world.client_counts[name]
        seen = ", ".join(f"{code or 'none'}: {n}" for code, n in sorted(statuses.items()))
        res.add_row(
            name,
            str(r["pass"]),
            str(r["block"]),
            str(r["exc"]),
            f"{r['rt'] / done * 1000:.1f}" if done else "-",
            seen,
        )
    ups = Table(title="upstream instances", title_justify="left")
    for col in ("instance", "weight", "picks", "failures", "ejections"):
        ups.add_column(col, justify="left" if col == "instance" else "right")
    for u in last["ups"]:
        ups.add_row(
            world.upstream_name(u["url"]),
            f"{u['weight']:g}",
            str(u["picks"]),
            str(u["failures"]),
            str(u["ejections"]),
        )
    return Group(res, ups)


def run(args: argparse.Namespace) -> int:
    if args.seconds < 1:
        print("guard demo: --seconds must be >= 1", file=sys.stderr)
        return 2
    world = DemoWorld()
    try:
        world.start()
    except OSError as exc:
        print(f"guard demo: cannot start: {exc}", file=sys.stderr)
        world.stop()
        return 1
    sampler = Sampler(world)
    sampler.sample()
    interactive = sys.stdout.isatty() and not args.plain
    console = Console(highlight=False)
    weights = ", ".join(f"{n} {w}" for n, (w, _) in INSTANCES.items())
    try:
        if interactive:
            with Live(console=console, auto_refresh=False) as live:
                while world.now() < args.seconds:
                    time.sleep(0.25)
                    sampler.sample()
                    rates = sampler.rates()
                    live.update(render(world, rates, sampler.events, args.seconds), refresh=True)
        else:
            print(
                f"guard demo: sidecar on http://{world.proxy_address[0]}:{world.proxy_address[1]} "
                f"(admin http://{world.admin_address[0]}:{world.admin_address[1]}), "
                f"instances {weights}",
                flush=True,
            )
            shown = 0
            for second in range(1, args.seconds + 1):
                while world.now() < second - 0.26:  # finer readings catch short events
                    time.sleep(0.25)
                    sampler.sample()
                time.sleep(max(0.0, second - world.now()))
                sampler.sample()
                print(_line(sampler.rates(), world), flush=True)
                for event in sampler.events[shown:]:
                    print(f"  event {event}", flush=True)
                shown = len(sampler.events)
    except KeyboardInterrupt:
        pass
    finally:
        world.stop()
    Console(highlight=False, width=None if interactive else 120).print(final_table(world, sampler))
    return 0
