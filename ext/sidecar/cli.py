"""``guard sidecar -c FILE``: run the proxy and its admin API until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys

__all__ = ["add_arguments", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-c", "--config", required=True, help="guard.yaml: rules plus sidecar:")
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )
    parser.add_argument(
        "--loop",
        default="auto",
        choices=["auto", "uvloop", "asyncio"],
        help="event loop (auto: uvloop when installed)",
    )
    parser.add_argument(
        "--poll",
        type=float,
        default=None,
        metavar="SEC",
        help="poll the config file every SEC seconds instead of watching it",
    )


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    from ext.sidecar.service import Sidecar
    from guard import RuleError

    try:
        sidecar = Sidecar(args.config)
    except RuleError as exc:
        for problem in exc.errors:
            print(f"{args.config}: {problem}", file=sys.stderr)
        return 1
    try:
        return _run_loop(sidecar.run(poll_interval=args.poll), args.loop)
    except OSError as exc:
        print(f"guard sidecar: {exc}", file=sys.stderr)
        return 1


def _run_loop(coro: object, which: str) -> int:
    if which != "asyncio":
        try:
            import uvloop
        except ImportError:
            if which == "uvloop":
                raise SystemExit(
                    "guard sidecar: --loop uvloop but uvloop is not installed"
                ) from None
        else:
            return int(uvloop.run(coro))  # type: ignore[arg-type]
    return int(asyncio.run(coro))  # type: ignore[arg-type]
