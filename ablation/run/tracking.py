"""Experiment tracking in the tools people already use, through Ray Tune's logger callbacks.

``--log mlflow[=URI]``: one MLflow run per trial (experiment: the sweep's name) with the trial
config as parameters and every reported epoch as metrics at its step (the cost figures ride in
every report); the default store is ``sqlite:///RUN_DIR/mlflow.db`` (``mlflow ui
--backend-store-uri sqlite:///RUN_DIR/mlflow.db``). ``--log tensorboard``: TensorBoard event
files in each trial's folder (``tensorboard --logdir RUN_DIR``). Both are optional extras
(``pip install 'ablation[tracking]'``); a missing one is a clear error before the sweep starts.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from ..errors import ConfigError

#: Tracking back-ends and the package each needs.
BACKENDS: dict[str, str] = {"mlflow": "mlflow", "tensorboard": "tensorboardX"}


def parse_logs(specs: list[str]) -> dict[str, str]:
    """``["mlflow=URI", "tensorboard"]`` -> ``{"mlflow": "URI", "tensorboard": ""}``, checked."""
    out: dict[str, str] = {}
    for spec in specs:
        name, _, target = spec.partition("=")
        if name not in BACKENDS:
            raise ConfigError(f"--log {spec!r}: unknown tracker; allowed: mlflow[=URI], tensorboard")
        if name == "tensorboard" and target:
            raise ConfigError("--log tensorboard takes no target: its files go into the trial folders")
        if importlib.util.find_spec(BACKENDS[name]) is None:
            raise ConfigError(
                f"--log {name}: the package {BACKENDS[name]!r} is not installed; pip install 'ablation[tracking]'"
            )
        out[name] = target
    return out


def mlflow_uri(run_dir: Path, target: str) -> str:
    """The tracking URI: the one given, else an SQLite store in the run directory."""
    return target or f"sqlite:///{Path(run_dir).resolve() / 'mlflow.db'}"


def callbacks(logs: dict[str, str], run_dir: Path, experiment: str) -> list[Any]:
    """Ray Tune logger callbacks for ``logs`` (see :func:`parse_logs`)."""
    out: list[Any] = []
    if "mlflow" in logs:
        from ray.air.integrations.mlflow import MLflowLoggerCallback

        out.append(
            MLflowLoggerCallback(
                tracking_uri=mlflow_uri(run_dir, logs["mlflow"]),
                experiment_name=experiment,
                tags={"ablation.sweep": experiment},
            )
        )
    if "tensorboard" in logs:
        from ray.tune.logger import TBXLoggerCallback

        out.append(TBXLoggerCallback())
    return out
