"""``guard check FILE``: validate a rule/config file; exit 1 listing every error."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_arguments", "check_file", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="rule file or guard.yaml (YAML or JSON)")


def check_file(path: str) -> list[str]:
    """Every problem of ``path`` with its location; empty when valid."""
    from ext.sidecar.configfile import read_config
    from guard import RuleError

    try:
        read_config(path)
    except RuleError as exc:
        return list(exc.errors)
    return []


def run(args: argparse.Namespace) -> int:
    errors = check_file(args.file)
    if errors:
        for problem in errors:
            print(f"{args.file}: {problem}", file=sys.stderr)
        print(f"{args.file}: {len(errors)} error(s)", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0
