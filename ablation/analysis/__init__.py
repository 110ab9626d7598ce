"""Analysis: from a run's results to its report.

Seeds are aggregated into variants (``aggregate.py``), ranked with Optuna's Pareto tools and
compared with their baselines (``rank.py``, with ``familywise.py`` and ``detectable.py``; robust
statistics in ``robust.py``), checked for convergence (``convergence.py``), training paths compared pair by pair in a parity
study (``path_parity.py``) and against an earlier run with a setting changed
(``setting_change.py``), laid out as tables,
plots and verdicts (``tables.py``, ``plots.py``, ``verdicts.py``) and written as the report
(``report.py``).

Public names are imported from their module on first use (so that importing one module of this
package does not import the others' libraries, such as Ray or matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .aggregate import aggregate, factors, reported_metric
    from .convergence import is_flat, last_gains, trial_convergence, variant_flatness
    from .path_parity import PathParity, path_parity
    from .setting_change import SettingChange, setting_change
    from .rank import Ranking, rank
    from .familywise import Family, holm
    from .detectable import mde
    from .report import REPORT_FILES, write_report

#: Public name -> the module of this package that defines it.
_HOMES: dict[str, str] = {
    "aggregate": "aggregate",
    "factors": "aggregate",
    "reported_metric": "aggregate",
    "is_flat": "convergence",
    "last_gains": "convergence",
    "trial_convergence": "convergence",
    "variant_flatness": "convergence",
    "PathParity": "path_parity",
    "path_parity": "path_parity",
    "SettingChange": "setting_change",
    "setting_change": "setting_change",
    "Ranking": "rank",
    "rank": "rank",
    "Family": "familywise",
    "holm": "familywise",
    "mde": "detectable",
    "REPORT_FILES": "report",
    "write_report": "report",
}
__all__ = [
    "Family",
    "PathParity",
    "REPORT_FILES",
    "Ranking",
    "SettingChange",
    "aggregate",
    "factors",
    "holm",
    "is_flat",
    "last_gains",
    "mde",
    "path_parity",
    "rank",
    "reported_metric",
    "setting_change",
    "trial_convergence",
    "variant_flatness",
    "write_report",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
