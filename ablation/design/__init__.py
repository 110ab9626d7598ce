"""Design: what a study compares, before anything runs.

A search space (``space.py``) expands into trial configs (``config.py``); the study-level choices
each config carries, how latency is measured (``execution.py``) and how trials train
(``train_path.py``); the columns of the results table (``columns.py``); and the seed budget
(``seed_budget.py``), decided by the sequential rule (``sequential.py``, checked by simulation
in ``seed_noise.py``).

Public names are imported from their module on first use (so that importing one module of this
package does not import the others' libraries, such as Ray or matplotlib).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .config import ATTENTION_OPTION_KEYS, TrialConfig, parse_overrides
    from .space import SearchSpace, SeedBudget, Statistics, load_space, parse_space, trial_config
    from .execution import EXECUTION_PATHS, ExecutionPath
    from .train_path import TRAIN_PATHS, TrainPath
    from .columns import CONFIG_COLUMNS, ID_COLUMNS, METRIC_COLUMNS, cell_text, config_columns, is_attention_factor
    from .seed_budget import Comparison, MissingBaseline, comparisons, decisions
    from .sequential import Decision, Plan, look

#: Public name -> the module of this package that defines it.
_HOMES: dict[str, str] = {
    "ATTENTION_OPTION_KEYS": "config",
    "TrialConfig": "config",
    "parse_overrides": "config",
    "SearchSpace": "space",
    "SeedBudget": "space",
    "Statistics": "space",
    "load_space": "space",
    "parse_space": "space",
    "trial_config": "space",
    "EXECUTION_PATHS": "execution",
    "ExecutionPath": "execution",
    "TRAIN_PATHS": "train_path",
    "TrainPath": "train_path",
    "CONFIG_COLUMNS": "columns",
    "ID_COLUMNS": "columns",
    "METRIC_COLUMNS": "columns",
    "cell_text": "columns",
    "config_columns": "columns",
    "is_attention_factor": "columns",
    "Comparison": "seed_budget",
    "MissingBaseline": "seed_budget",
    "comparisons": "seed_budget",
    "decisions": "seed_budget",
    "Decision": "sequential",
    "Plan": "sequential",
    "look": "sequential",
}
__all__ = [
    "ATTENTION_OPTION_KEYS",
    "CONFIG_COLUMNS",
    "Comparison",
    "Decision",
    "EXECUTION_PATHS",
    "ExecutionPath",
    "ID_COLUMNS",
    "METRIC_COLUMNS",
    "MissingBaseline",
    "Plan",
    "SearchSpace",
    "SeedBudget",
    "Statistics",
    "TRAIN_PATHS",
    "TrainPath",
    "TrialConfig",
    "cell_text",
    "comparisons",
    "config_columns",
    "decisions",
    "is_attention_factor",
    "load_space",
    "look",
    "parse_overrides",
    "parse_space",
    "trial_config",
]


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_HOMES[name]}"), name)
