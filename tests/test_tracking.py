"""Tracking through Ray Tune's logger callbacks: MLflow runs per trial with every epoch, and
TensorBoard event files; a tracker that is missing or unknown is one clear line."""

from __future__ import annotations

import pytest

from ablation.errors import ConfigError
from ablation.run.tracking import parse_logs
from sweep_fixtures import fake_trial, space


@pytest.mark.slow
def test_mlflow_one_run_per_trial_with_every_epoch(local_ray, tmp_path, trial_log):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    from ablation.run.results import read_results
    from ablation.run.sweep import run_sweep

    outcome = run_sweep(
        space("tracked", grid={"attention": ["none", "sca"], "seed": [0, 1]}, epochs=3),
        storage=tmp_path,
        trial_fn=fake_trial,
        verbose=0,
        log=("mlflow", "tensorboard"),
    )
    assert outcome.counts == {"completed": 4}
    client = MlflowClient(tracking_uri=f"sqlite:///{outcome.run_dir / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("tracked")
    runs = client.search_runs([experiment.experiment_id])
    table = read_results(outcome.run_dir)
    assert len(runs) == len(table) == 4
    for run in runs:
        history = client.get_metric_history(run.info.run_id, "top1")
        assert sorted(m.step for m in history) == [1, 2, 3]  # every epoch, at its step
        assert {"params", "flops", "latency_ms"} <= set(run.data.metrics)  # the cost figures
        assert run.data.params["point/backbone"] == "resnet20"  # the trial config as parameters
    assert len(list(outcome.run_dir.glob("trial_*/events.out.tfevents.*"))) == 4


def test_missing_or_unknown_tracker_is_a_clear_error(monkeypatch):
    with pytest.raises(ConfigError, match="allowed: mlflow"):
        parse_logs(["wandb"])
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "mlflow" else real(name))
    with pytest.raises(ConfigError, match=r"pip install 'ablation\[tracking\]'"):
        parse_logs(["mlflow"])
