"""Reading guard.yaml: rule sections (validated by the engine) plus the ``sidecar:`` section.

``read_config`` returns everything a sidecar needs from one read of the file, including the
hash of its bytes, which the hot reloader and ``PUT /api/rules`` use to tell a real change
from their own write-back.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ext.sidecar.config import SidecarConfig, parse_sidecar
from guard import RuleError, RuleSet
from guard.rules import parse_config

__all__ = ["LoadedConfig", "file_digest", "parse_text", "read_config", "write_config"]


@dataclasses.dataclass(frozen=True)
class LoadedConfig:
    """One valid read of the config file."""

    rules: RuleSet
    sidecar: SidecarConfig | None
    sidecar_raw: Mapping[str, Any] | None
    digest: str
    is_json: bool


def _is_json(path: Path, text: str) -> bool:
    return path.suffix.lower() == ".json" or text.lstrip().startswith("{")


def _decode(text: str, is_json: bool) -> Any:
    if is_json:
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise RuleError([f"line {exc.lineno}, column {exc.colno}: {exc.msg}"]) from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "yaml"
        raise RuleError([f"{where}: {problem}"]) from None


def parse_text(text: str, *, is_json: bool = False, require_sidecar: bool = False) -> LoadedConfig:
    """Validate config text; every problem of every section is collected.

    :param text: YAML or JSON text.
    :param is_json: decode as JSON (errors then name JSON positions).
    :param require_sidecar: a missing ``sidecar:`` section is an error.
    :raises RuleError: listing every problem with its location.
    :returns: the validated config.
    """
    data = _decode(text, is_json)
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise RuleError(["(top level): must be a mapping of sections"])
    errors: list[str] = []
    rules: RuleSet | None = None
    try:
        rules, _ = parse_config(data)
    except RuleError as exc:
        errors.extend(exc.errors)
    sidecar_raw = data.get("sidecar")
    sidecar = None
    if sidecar_raw is not None:
        sidecar, sidecar_errors = parse_sidecar(sidecar_raw)
        errors.extend(sidecar_errors)
    elif require_sidecar:
        errors.append("sidecar: section required to run the sidecar")
    if errors or rules is None:
        raise RuleError(errors)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return LoadedConfig(rules, sidecar, sidecar_raw, digest, is_json)


def read_config(path: str | os.PathLike[str], *, require_sidecar: bool = False) -> LoadedConfig:
    """Read and validate a config file.

    :raises RuleError: unreadable file or invalid content, every problem located.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError([f"{p}: cannot read: {exc}"]) from None
    return parse_text(text, is_json=_is_json(p, text), require_sidecar=require_sidecar)


def file_digest(path: str | os.PathLike[str]) -> str | None:
    """SHA-256 of the file's bytes, or None when it cannot be read."""
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def write_config(
    path: str | os.PathLike[str],
    rules: Mapping[str, Any],
    sidecar_raw: Mapping[str, Any] | None,
    *,
    is_json: bool,
) -> str:
    """Write rule sections plus the kept ``sidecar:`` section, atomically (temp + rename).

    :returns: the SHA-256 of the written text.
    """
    p = Path(path)
    data: dict[str, Any] = {k: v for k, v in rules.items() if v not in (None, [], {}, ())}
    if sidecar_raw is not None:
        data["sidecar"] = sidecar_raw
    if is_json:
        text = json.dumps(data, indent=2) + "\n"
    else:
        text = yaml.safe_dump(data, sort_keys=False, default_flow_style=False)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(tmp, p.stat().st_mode & 0o7777)
        except OSError:
            pass
        os.replace(tmp, p)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return hashlib.sha256(text.encode()).hexdigest()
