"""``guard rules``: manage rules kept in Redis.

``guard rules push FILE --redis URL [--key guard:rules]`` validates FILE exactly like
``guard check`` (a guard.yaml's ``sidecar:`` section is accepted and not published), then
stores its rule sections in the key and publishes them on the channel of the same name in
one MULTI, so every subscribed engine and sidecar applies them at once.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

__all__ = ["add_arguments", "push", "run"]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="rules_command", metavar="ACTION")
    push_help = "validate a rule file and publish it to a Redis key and channel"
    sub = actions.add_parser("push", help=push_help, description=push_help)
    sub.add_argument("file", help="rule or config file (YAML or JSON)")
    sub.add_argument("--redis", required=True, metavar="URL", help="redis:// URL")
    sub.add_argument("--key", default="guard:rules", help="key and channel (default guard:rules)")


def run(args: argparse.Namespace) -> int:
    if getattr(args, "rules_command", None) != "push":
        print("usage: guard rules push FILE --redis URL [--key KEY]", file=sys.stderr)
        return 2
    return push(args.file, args.redis, args.key)


def push(path: str, url: str, key: str = "guard:rules") -> int:
    """Validate ``path`` and publish its rules; print the outcome.

    :returns: 0 on success; 1 when the file is invalid (every error listed) or Redis
        cannot be reached (nothing is written then).
    """
    from guard.errors import RuleError
    from guard.rules import parse_config

    try:
        rules, _sidecar = parse_config(path)
    except RuleError as exc:
        for error in exc.errors:
            located = error if error.startswith(f"{path}: ") else f"{path}: {error}"
            print(located, file=sys.stderr)
        print(f"{path}: {len(exc.errors)} error(s); nothing published", file=sys.stderr)
        return 1
    document = json.dumps(rules.to_dict(), indent=2) + "\n"
    try:
        listeners = _publish(url, key, document)
    except Exception as exc:  # redis errors and bad URLs alike: a message, no traceback
        print(f"guard rules push: cannot publish to {url}: {exc}", file=sys.stderr)
        return 1
    count = sum(len(v) if isinstance(v, list | tuple) else int(v is not None)
                for v in rules.to_dict().values())  # fmt: skip
    print(f"pushed {count} rule(s) from {path} to {key}; {listeners} subscriber(s) notified")
    return 0


def _publish(url: str, key: str, document: str) -> Any:
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(key, document)
            pipe.publish(key, document)
            return pipe.execute()[1]
    finally:
        client.close()
