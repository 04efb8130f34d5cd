"""The ``guard`` command.

Each subcommand lives in its own module, named in ``COMMANDS``, which defines
``add_arguments(parser)`` and ``run(args) -> int``. Only the chosen subcommand's module is
imported (plus all of them for ``--help``), so ``guard check`` does not pay for the sidecar.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

__all__ = ["main"]

# name -> (module, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "ext.demo",
        "run protected functions under generated traffic and show what the guard does",
    ),
    "check": ("ext.check", "validate a rule/config file; exit 1 listing every error"),
    "sidecar": ("ext.sidecar.cli", "run the HTTP reverse proxy with its admin API"),
    "top": ("ext.top", "live terminal dashboard of a sidecar's admin API"),
    "rules": ("ext.sources.cli", "publish rules to Redis"),
}


def _available() -> dict[str, tuple[str, str]]:
    found = {}
    for name, (module, help_text) in COMMANDS.items():
        try:
            if importlib.util.find_spec(module) is not None:
                found[name] = (module, help_text)
        except ModuleNotFoundError:  # its package is not there
            continue
    return found


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    available = _available()
    parser = argparse.ArgumentParser(prog="guard", description="traffic-guard command line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    chosen = argv[0] if argv and argv[0] in available else None
    modules = {}
    for name, (module_name, help_text) in available.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        if chosen is None or name == chosen:
            module = importlib.import_module(module_name)
            modules[name] = module
            module.add_arguments(sub_parser)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return int(modules[args.command].run(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
