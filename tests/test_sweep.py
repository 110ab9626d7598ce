"""Ray Tune sweeps for real on a local Ray: results table, failures, ASHA, Optuna, resume, and the
clear errors given before any trial starts (faults injected for real: ``test_faults.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from ablation.cli import main
from ablation.errors import ConfigError
from ablation.run.results import read_results
from sweep_fixtures import TINY_BASE, fake_trial, space


@pytest.mark.slow
def test_real_sweep_writes_results_table(local_ray, tmp_path):
    from ablation.run.sweep import run_sweep

    outcome = run_sweep(space("real", grid={"attention": ["none", "se", "eca"]}), storage=tmp_path, verbose=0)
    table = read_results(outcome.run_dir)
    assert outcome.counts == {"completed": 3}
    assert sorted(table["attention"]) == ["eca", "none", "se"]
    assert set(table["status"]) == {"completed"} and set(table["epochs_done"]) == {2}
    assert table["top1"].between(0, 100).all() and (table["params"] > 0).all() and (table["flops"] > 0).all()
    assert table["best_top1"].ge(table["top1"]).all()
    assert table["variant"].nunique() == 3
    # every variant on the study's training path, and what that ran as (issue 26)
    assert set(table["train_path"]) == {"eager"} and set(table["train_setup"]) == {"eager: fp32, NCHW"}
    assert (table["compile_time_s"] == 0).all()
    # the options each module used without being given them are in the table (SE's reduction)
    assert table.set_index("attention").loc["se", "reduction"] == 16
    assert table.set_index("attention").loc[["none", "eca"], "reduction"].isna().all()
    info = json.loads((outcome.run_dir / "sweep.json").read_text())
    assert info["n_trials"] == 3 and info["wall_time_s"] > 0 and info["finished"]
    assert not list(outcome.run_dir.glob(".results.csv.*"))
    # the test split, evaluated at the end, apart from the validation split selected on
    assert table["test_top1"].between(0, 100).all() and (table["val_images"] > 0).all()
    assert (table["test_images"] == 32).all() and set(table["val_split"]) == {0.1}
    # where each trial ran
    import torch

    assert set(table["torch_version"]) == {str(torch.__version__)} and table["cpu_model"].notna().all()
    assert table["host"].notna().all() and table["ray_node"].str.len().gt(0).all()
    assert set(table["cpu_capability"]) == {torch.backends.cpu.get_cpu_capability()}  # what decides CPU numerics
    assert table[["cpu_isa", "mkl_version", "onednn_version"]].notna().all(axis=None)
    # every epoch of every trial, tidy
    from ablation.run.epochs import EPOCH_COLUMNS, read_epochs

    epochs = read_epochs(outcome.run_dir)
    assert list(epochs.columns) == list(EPOCH_COLUMNS) and len(epochs) == 3 * 2
    last = epochs[epochs["epoch"] == 2].set_index("trial_id")["top1"]
    assert last.to_dict() == table.set_index("trial_id")["top1"].to_dict()


@pytest.mark.slow
def test_failed_trial_is_recorded_with_its_message_and_retried(local_ray, tmp_path, trial_log):
    from ablation.run.sweep import run_sweep

    s = space("failing", grid={"lr": [0.1, 5.0], "seed": [0, 1]}, max_failures=1)
    outcome = run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    table = read_results(outcome.run_dir)
    assert outcome.counts == {"completed": 2, "failed": 2}
    failed = table[table["status"] == "failed"]
    assert set(failed["lr"]) == {5.0}
    assert all(e == "RuntimeError: diverged with lr=5.0" for e in failed["error"])
    assert set(table[table["status"] == "completed"]["epochs_done"]) == {2}
    attempts = [line for line in trial_log.read_text().splitlines() if line.startswith("fail")]
    assert len(attempts) == 2 * 2  # each failing trial: first try + 1 retry


@pytest.mark.slow
def test_asha_stops_poor_trials_early(local_ray, tmp_path, trial_log):
    from ablation.run.sweep import run_sweep

    s = space(
        "asha",
        grid={"attention": ["sca"], "kernel_size": [1, 3, 5, 7]},
        epochs=4,
        scheduler="asha",
        grace_period=1,
        reduction_factor=2,
        max_concurrent=1,
    )
    outcome = run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    table = read_results(outcome.run_dir).set_index("kernel_size")
    assert table.loc[1, "status"] == "completed" and table.loc[1, "epochs_done"] == 4
    stopped = table[table["status"] == "stopped"]
    assert len(stopped) >= 2 and (stopped["epochs_done"] < 4).all()


@pytest.mark.slow
def test_sampled_space_runs_optuna_trials(local_ray, tmp_path, trial_log):
    from ablation.run.sweep import run_sweep

    s = space("sampled", sample={"num_samples": 3, "seed": 1, "params": {"lr": {"log": [0.01, 0.5]}}})
    outcome = run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    table = read_results(outcome.run_dir)
    assert len(table) == 3 and set(table["status"]) == {"completed"}
    assert "lr" in table.columns and table["lr"].between(0.01, 0.5).all() and table["lr"].nunique() == 3


@pytest.mark.slow
def test_existing_sweep_needs_resume(local_ray, tmp_path, trial_log, monkeypatch):
    from ablation.run.atomic_storage import AtomicLocalHandler
    from ablation.run.sweep import run_sweep

    written = []  # what the driver wrote into the run directory, through the atomic file system
    plain = AtomicLocalHandler.open_output_stream
    monkeypatch.setattr(
        AtomicLocalHandler,
        "open_output_stream",
        lambda self, path, metadata=None: written.append(Path(path).name) or plain(self, path),
    )
    s = space("again", grid={"seed": [0]})
    run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    assert {"result.json", "tuner.pkl"} <= set(written) and any(n.startswith("experiment_state") for n in written)
    with pytest.raises(ConfigError, match="--resume"):
        run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    changed = space("again", grid={"seed": [0, 1]})
    with pytest.raises(ConfigError, match="different version"):
        run_sweep(changed, storage=tmp_path, resume=True, trial_fn=fake_trial, verbose=0)
    before = trial_log.read_text()
    written.clear()
    outcome = run_sweep(s, storage=tmp_path, resume=True, trial_fn=fake_trial, verbose=0)
    assert outcome.counts == {"completed": 1} and trial_log.read_text() == before  # nothing re-run
    assert any(n.startswith("experiment_state") for n in written)  # the resumed run writes atomically too


# --- clear errors before any trial starts (no Ray needed) ---


def _write_space(tmp_path, **base) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(
        yaml.safe_dump({"name": "s", "base": {**TINY_BASE, **base}, "grid": {"seed": [0]}, "budget": {"epochs": 1}})
    )
    return path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--storage", "{tmp}/file.txt/runs"], "is not writable"),
        (["--address", "127.0.0.1:9"], "no Ray cluster reachable"),
        (["--address", "nonsense"], "expected HOST:PORT"),
        (["--max-concurrent", "0"], "--max-concurrent"),
    ],
)
def test_sweep_cli_errors_are_one_line(tmp_path, capsys, args, fragment):
    (tmp_path / "file.txt").write_text("not a folder")
    argv = ["sweep", str(_write_space(tmp_path)), "--storage", str(tmp_path / "runs")]
    argv += [a.format(tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_missing_data_fails_before_ray(tmp_path, capsys):
    path = _write_space(tmp_path, dataset="cifar10", data_dir=str(tmp_path / "nowhere"))
    assert main(["sweep", str(path), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "cifar10" in err and "nowhere" in err and "Traceback" not in err
