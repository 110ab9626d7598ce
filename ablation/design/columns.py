"""The columns of a results table (``results.csv``, ``docs/contracts.md``): which hold a trial's
config, which of those describe the attention variant and which the setting it runs in, which
hold its metrics; and how a config value reads as text.

The sweep writes these columns (``ablation.run.results``), the seed budget pairs variants by
them (``ablation.design.seed_budget``) and the analysis groups by them (``ablation.analysis``),
so all three read them from here.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from ..provenance import PROVENANCE_KEYS
from .config import TrialConfig

if TYPE_CHECKING:
    import pandas as pd

ID_COLUMNS: tuple[str, ...] = ("trial_id", "variant", "status", "error")
#: Config columns describing an attention variant (the rest describe the setting it runs in).
ATTENTION_FACTORS: tuple[str, ...] = (
    "attention",
    "position",
    "stages",
    "kernel_size",
    "branches",
    "pool",
    "fuse",
    "norm",
    "gate",
    "reduction",
)
CONFIG_COLUMNS: tuple[str, ...] = (
    "backbone",
    *ATTENTION_FACTORS,
    "dataset",
    "width_mult",
    "epochs",
    "val_split",
    "latency_path",
    "train_path",
    "seed",
)
#: Facts about a trial's data and machine (from its last report): not part of the variant.
TRIAL_INFO_COLUMNS: tuple[str, ...] = (
    "num_classes",
    "in_channels",
    "input_size",
    "train_images",
    "val_images",
    "test_images",
    *PROVENANCE_KEYS,
)
METRIC_COLUMNS: tuple[str, ...] = (
    "epochs_done",
    "top1",
    "top5",
    "val_loss",
    "train_loss",
    "test_top1",
    "test_top5",
    "test_loss",
    "collapsed",
    "best_top1",
    "best_epoch",
    "params",
    "flops",
    "flops_convfc",
    "attention_params",
    "attention_flops",
    "latency_ms",
    "uncounted_ops",
    "train_time_s",
    "compile_time_s",
    "images_per_s",
    "train_setup",
    *TRIAL_INFO_COLUMNS,
)
#: Metrics taken from a trial's last report (the rest are derived from its whole history).
LAST_METRICS: tuple[str, ...] = (
    "top1",
    "top5",
    "val_loss",
    "train_loss",
    "test_top1",
    "test_top5",
    "test_loss",
    "params",
    "flops",
    "flops_convfc",
    "attention_params",
    "attention_flops",
    "latency_ms",
    "uncounted_ops",
    "train_setup",
    *TRIAL_INFO_COLUMNS,
)
STATUSES: tuple[str, ...] = ("completed", "failed", "stopped", "running", "pending")
#: Keys of a trial config that say where or how a trial ran, never what was ablated.
NOT_VARIANT_COLUMNS: tuple[str, ...] = ("data_dir", "device", "threads", "download", "workers")


def is_attention_factor(column: str) -> bool:
    """A column that describes the attention variant: ours, or a user module's own option
    (a config key that is no trial-config field)."""
    return column in ATTENTION_FACTORS or (column not in TrialConfig.model_fields and column not in _NOT_CONFIG)


def config_columns(results: "pd.DataFrame") -> list[str]:
    """Columns of ``results.csv`` that hold a trial's config (the seed included)."""
    return [c for c in results.columns if c not in _NOT_CONFIG]


def _not_config() -> frozenset[str]:
    return frozenset((*ID_COLUMNS, *METRIC_COLUMNS))


_NOT_CONFIG = _not_config()


def cell_text(value: Any) -> str:
    """A config value as text: ``-`` for not applicable, integers without ``.0``."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return "-"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
