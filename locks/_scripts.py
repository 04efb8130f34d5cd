"""The Lua scripts, loaded once from package files and identified by their SHA1.

Each file carries a KEYS/ARGV/returns header. Fronts run a script with EVALSHA and, on the
first NOSCRIPT from a given server (new client, restart, SCRIPT FLUSH), load it there and try
again, so scripts are registered per client, not once per class.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources

__all__ = ["ACQUIRE", "EXTEND", "FENCE_MAX", "RELEASE", "Script"]


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    body: str
    sha: str


def _load(name: str) -> Script:
    body = resources.files("locks._lua").joinpath(f"{name}.lua").read_text(encoding="utf-8")
    return Script(name, body, hashlib.sha1(body.encode()).hexdigest())


ACQUIRE = _load("acquire")
RELEASE = _load("release")
EXTEND = _load("extend")
FENCE_MAX = _load("fence_max")
