"""The public names of each package are exactly SPEC's import lines; core never imports ext."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Copied from the import lines of shared/SPEC.md (sections 1, 2 and 3).
SPEC_NAMES: dict[str, set[str]] = {
    "guard": {
        "guard",
        "entry",
        "context",
        "Guard",
        "ManualClock",
        "load_rules",
        "default_engine",
        "FlowRule",
        "DegradeRule",
        "AuthorityRule",
        "SystemRule",
        "ParamFlowRule",
        "RuleSet",
        "BlockError",
        "FlowBlocked",
        "DegradeBlocked",
        "AuthorityBlocked",
        "SystemBlocked",
        "ParamFlowBlocked",
        "RuleError",
    },
    "timewheel": {"TimingWheel", "DelayQueue", "RedisDelayQueue", "Task"},
    "locks": {"RedisLock", "Redlock", "LockError", "LockNotOwnedError", "LockTimeoutError"},
    "locks.aio": {"RedisLock", "Redlock"},
}

# Packages still being built (issues 4 and 5) export nothing yet; their check switches on by
# itself as soon as their ``__all__`` is non-empty.
BUILDING = {"timewheel", "locks", "locks.aio"}

CORE = ("guard", "timewheel", "locks")


def _exported(package: str) -> list[str] | None:
    """The package's ``__all__``, or None if the package does not exist yet."""
    try:
        module = importlib.import_module(package)
    except ModuleNotFoundError as exc:
        if package in BUILDING and exc.name is not None and package.startswith(exc.name):
            return None
        raise
    return list(module.__all__)


def test_guard_exports_exactly_the_spec_names() -> None:
    exported = _exported("guard")
    assert exported is not None
    assert len(exported) == len(set(exported)), "duplicates in guard.__all__"
    assert set(exported) == SPEC_NAMES["guard"]


@pytest.mark.parametrize("package", sorted(SPEC_NAMES))
def test_every_exported_name_resolves(package: str) -> None:
    exported = _exported(package)
    module = importlib.import_module(package) if exported is not None else None
    for name in exported or ():
        assert getattr(module, name, None) is not None, f"{package}.{name} is missing"


@pytest.mark.parametrize("package", sorted(BUILDING))
def test_packages_being_built_export_spec_names_once_they_export_any(package: str) -> None:
    exported = _exported(package)
    if not exported:
        # Pending: nothing exported yet. Pin that too, so a partial export cannot slip by.
        assert exported in (None, [])
        return
    assert set(exported) == SPEC_NAMES[package]


def test_guard_spec_import_line_works() -> None:
    from guard import (
        AuthorityBlocked,
        AuthorityRule,
        BlockError,
        DegradeBlocked,
        DegradeRule,
        FlowBlocked,
        FlowRule,
        Guard,
        ManualClock,
        ParamFlowBlocked,
        ParamFlowRule,
        RuleError,
        RuleSet,
        SystemBlocked,
        SystemRule,
        context,
        default_engine,
        entry,
        guard,
        load_rules,
    )

    for blocked in (FlowBlocked, DegradeBlocked, AuthorityBlocked, SystemBlocked, ParamFlowBlocked):
        assert issubclass(blocked, BlockError)
    assert issubclass(RuleError, ValueError)
    assert all(callable(f) for f in (guard, entry, context, load_rules, default_engine))
    assert isinstance(default_engine(), Guard)
    assert ManualClock(5).now_ms() == 5
    rules = (FlowRule, DegradeRule, AuthorityRule, SystemRule, ParamFlowRule, RuleSet)
    assert all(isinstance(r, type) for r in rules)


def _ext_imports(path: Path) -> list[str]:
    """Each ``import ext...`` / ``from ext... import`` in ``path`` as ``file:line``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        modules: list[str] = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            modules = [node.args[0].value]
        for module in modules:
            if module == "ext" or module.startswith("ext."):
                where = path.relative_to(ROOT) if path.is_relative_to(ROOT) else path
                found.append(f"{where}:{node.lineno}")
    return found


def _core_sources() -> list[Path]:
    files: list[Path] = []
    for package in CORE:
        files += sorted((ROOT / package).rglob("*.py"))
        files += sorted((ROOT / package).rglob("*.pxd"))
    return files


def test_core_packages_never_import_ext() -> None:
    files = [f for f in _core_sources() if f.suffix == ".py"]
    assert any(f.name == "engine.py" for f in files), "the walk found no guard sources"
    offenders = [hit for f in files for hit in _ext_imports(f)]
    assert offenders == []


def test_core_pxd_files_never_cimport_ext() -> None:
    offenders = []
    for f in _core_sources():
        if f.suffix != ".pxd":
            continue
        for lineno, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            words = line.split()
            if (
                len(words) >= 2
                and words[0] in ("from", "cimport", "import")
                and (words[1] == "ext" or words[1].startswith("ext."))
            ):
                offenders.append(f"{f.relative_to(ROOT)}:{lineno}")
    assert offenders == []


def test_the_ext_import_detector_finds_each_form(tmp_path: Path) -> None:
    # The walk above must really catch every spelling, or the check could never fail.
    probe = tmp_path / "probe.py"
    probe.write_text(
        "import os, ext.cli\n"
        "from ext import cli\n"
        "from ext.admin import app\n"
        "from .ext import fine\n"
        "import extra\n"
        "importlib.import_module('ext.sidecar')\n",
        encoding="utf-8",
    )
    hits = _ext_imports(probe)
    assert [h.rsplit(":", 1)[1] for h in hits] == ["1", "2", "3", "6"]


def test_importing_the_core_loads_no_ext_module() -> None:
    # The AST walk cannot see imports made by code that runs at import time through other
    # means; a fresh interpreter can.
    import subprocess
    import sys

    code = (
        "import sys, guard, guard.engine, timewheel, locks\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('locks.aio'): import locks.aio\n"
        "g = guard.Guard(clock=guard.ManualClock(0))\n"
        "g.load_rules({'flow': [{'resource': 'r', 'count': 1}]})\n"
        "with g.entry('r'): pass\n"
        "print(sorted(m for m in sys.modules if m == 'ext' or m.startswith('ext.')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
