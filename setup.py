"""Build the Cython twins.

Each accelerated module is one typed Python source ``<pkg>/_<name>_py.py`` plus a
``<pkg>/_<name>_c.pxd`` with the C declarations; it is compiled under the second module
name ``<pkg>._<name>_c`` (the aiohttp websocket-reader pattern). Twins are discovered, so
adding one needs no edit here. ``GUARD_NO_EXTENSIONS=1`` builds pure Python only.
"""

from __future__ import annotations

import os
from pathlib import Path

from setuptools import Extension, setup

ROOT = Path(__file__).parent
PACKAGES = ("guard", "timewheel", "locks", "ext")


def twin_extensions() -> list[Extension]:
    exts = []
    for pkg in PACKAGES:
        for pxd in sorted((ROOT / pkg).rglob("_*_c.pxd")):
            source = pxd.with_name(pxd.name[: -len("_c.pxd")] + "_py.py")
            if not source.exists():
                raise SystemExit(f"{pxd}: no twin source {source.name}")
            _regenerate_if_stale(source, pxd)
            rel = pxd.relative_to(ROOT).with_suffix("")
            exts.append(Extension(".".join(rel.parts), [str(source.relative_to(ROOT))]))
    return exts


def _regenerate_if_stale(source: Path, pxd: Path) -> None:
    """Drop a generated .c older than its .pxd or any .pxd under the package roots.

    cythonize tracks the .py and its cimports, but not always the augmenting .pxd of a
    pure-Python-mode module; a stale .c would keep the old C declarations.
    """
    generated = source.with_suffix(".c")
    if not generated.exists():
        return
    newest = max(p.stat().st_mtime for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.pxd"))
    if newest > generated.stat().st_mtime:
        generated.unlink()


def ext_modules() -> list[Extension]:
    if os.environ.get("GUARD_NO_EXTENSIONS"):
        return []
    from Cython.Build import cythonize

    return cythonize(
        twin_extensions(),
        language_level=3,
        include_path=[str(ROOT)],
        compiler_directives={
            "boundscheck": False,
            "wraparound": False,
            "cdivision": True,
            "initializedcheck": False,
            "embedsignature": True,
        },
        quiet=True,
    )


setup(ext_modules=ext_modules())
