"""Users' own modules (attention or backbone by import path) on a Ray cluster.

A module that lives in a local directory (not an installed package) is shipped to every Ray
worker with Ray's runtime environment (``py_modules``: its package directory, or its file for a
single-file module). An installed package is expected to be installed on every node, like this
package itself.
"""
from __future__ import annotations

import importlib
import site
import sys
import sysconfig
from pathlib import Path
from typing import Any, Iterable

from .attention.external import is_import_path


def import_paths(space_dump: dict[str, Any]) -> list[str]:
    """Every ``module:attribute`` attention or backbone a space names (base, grid, sample)."""
    found: list[str] = []

    def visit(value: Any) -> None:
        values = value if isinstance(value, list) else [value]
        found.extend(v for v in values if isinstance(v, str) and is_import_path(v) and v not in found)

    base = space_dump.get("base", {})
    for key in ("attention", "backbone"):
        visit(base.get(key))
    grid = space_dump.get("grid") or []
    for block in grid if isinstance(grid, list) else [grid]:
        if isinstance(block, dict):
            for key in ("attention", "backbone"):
                visit(block.get(key))
    params = (space_dump.get("sample") or {}).get("params", {})
    for key in ("attention", "backbone"):
        visit((params.get(key) or {}).get("choice"))
    return found


def _installed_roots() -> list[Path]:
    roots = {sysconfig.get_paths()[k] for k in ("purelib", "platlib", "stdlib")}
    roots |= set(site.getsitepackages()) | {site.getusersitepackages()}
    return [Path(r).resolve() for r in roots]


def local_modules(paths: Iterable[str]) -> list[str]:
    """File-system paths of the top-level local (not installed) modules that ``paths`` import from."""
    roots = _installed_roots()
    out: list[str] = []
    for path in paths:
        top = path.partition(":")[0].split(".")[0]
        module = sys.modules.get(top) or importlib.import_module(top)
        origin = module.__path__[0] if hasattr(module, "__path__") else module.__file__
        if origin is None:  # built into the interpreter: nothing to ship
            continue
        location = Path(origin).resolve()
        if any(location.is_relative_to(root) for root in roots):
            continue
        if str(location) not in out:
            out.append(str(location))
    return out
