"""Ray Tune sweeps for real on a local Ray: results table, failures, ASHA, Optuna, resume after
the driver is killed, and the clear errors given before any trial starts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
import yaml

from ablation.cli import main
from ablation.errors import ConfigError
from ablation.results import read_results
from ablation.space import parse_space

TINY_DATA = "synthetic:size=8,channels=1,classes=2,train=64,val=32"
TINY_BASE = {"dataset": TINY_DATA, "backbone": "resnet20", "batch_size": 32, "latency_runs": 1,
             "device": "cpu", "threads": 1}


def space(name: str, grid=None, sample=None, **budget) -> "object":
    data = {"name": name, "base": dict(TINY_BASE), "budget": {"epochs": 2, "max_failures": 0, **budget},
            "resources": {"cpu": 1}}
    data.update({"grid": grid} if grid is not None else {"sample": sample})
    return parse_space(data)


def fake_trial(cfg, report=None, resume_from=None):
    """A trial with run_trial's contract, cheap and scriptable through its config.

    ``lr`` > 1 raises; ``kernel_size`` lowers top1 (so ASHA has losers); every epoch run is
    appended to ``$FAKE_TRIAL_LOG``; the trial with ``seed == 2`` pauses at epoch 2 while
    ``$FAKE_TRIAL_PAUSE`` names a file that does not exist yet (then creates it).
    """
    log = os.environ["FAKE_TRIAL_LOG"]
    start = json.loads(Path(resume_from, "state.json").read_text())["epoch"] if resume_from else 0
    history = []
    for epoch in range(start + 1, cfg.epochs + 1):
        pause = os.environ.get("FAKE_TRIAL_PAUSE")
        if pause and cfg.seed == 2 and epoch == 2 and not os.path.exists(pause):
            Path(pause).write_text("paused")
            time.sleep(120)
        if cfg.lr > 1:
            with open(log, "a") as f:
                f.write(f"fail {cfg.seed} {epoch}\n")
            raise RuntimeError(f"diverged with lr={cfg.lr}")
        metrics = {"epoch": epoch, "train_loss": 1.0 / epoch, "val_loss": 1.0 / epoch,
                   "top1": 90.0 - 10 * (cfg.kernel_size or 0) + epoch + cfg.lr, "top5": 100.0,
                   "epoch_time_s": 0.01, "images_per_s": 1000.0, "lr": cfg.lr, "params": 1, "flops": 1,
                   "attention_params": 0, "attention_flops": 0, "latency_ms": 0.1}
        with tempfile.TemporaryDirectory() as d:
            Path(d, "state.json").write_text(json.dumps({"epoch": epoch}))
            report(metrics, d)
        with open(log, "a") as f:
            f.write(f"epoch {cfg.seed} {epoch}\n")
        history.append(metrics)
    return {**history[-1], "history": history} if history else {}


@pytest.fixture(scope="module")
def local_ray(tmp_path_factory):
    """One local Ray for the module (its start-up is the slow part of every sweep); its
    workers log fake trials' epochs to the file it returns."""
    import ray
    import ray.cloudpickle

    log = tmp_path_factory.mktemp("fake") / "trials.log"
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FAKE_TRIAL_LOG", str(log))  # inherited by Ray's workers
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield log
    ray.shutdown()


@pytest.fixture
def trial_log(local_ray):
    local_ray.write_text("")
    return local_ray


def test_real_sweep_writes_results_table(local_ray, tmp_path):
    from ablation.sweep import run_sweep

    outcome = run_sweep(space("real", grid={"attention": ["none", "se", "eca"]}), storage=tmp_path, verbose=0)
    table = read_results(outcome.run_dir)
    assert outcome.counts == {"completed": 3}
    assert sorted(table["attention"]) == ["eca", "none", "se"]
    assert set(table["status"]) == {"completed"} and set(table["epochs_done"]) == {2}
    assert table["top1"].between(0, 100).all() and (table["params"] > 0).all() and (table["flops"] > 0).all()
    assert table["best_top1"].ge(table["top1"]).all()
    assert table["variant"].nunique() == 3
    info = json.loads((outcome.run_dir / "sweep.json").read_text())
    assert info["n_trials"] == 3 and info["wall_time_s"] > 0 and info["finished"]
    assert not list(outcome.run_dir.glob(".results.csv.*"))


def test_failed_trial_is_recorded_with_its_message_and_retried(local_ray, tmp_path, trial_log):
    from ablation.sweep import run_sweep

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


def test_asha_stops_poor_trials_early(local_ray, tmp_path, trial_log):
    from ablation.sweep import run_sweep

    s = space("asha", grid={"attention": ["sca"], "kernel_size": [1, 3, 5, 7]}, epochs=4,
              scheduler="asha", grace_period=1, reduction_factor=2, max_concurrent=1)
    outcome = run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    table = read_results(outcome.run_dir).set_index("kernel_size")
    assert table.loc[1, "status"] == "completed" and table.loc[1, "epochs_done"] == 4
    stopped = table[table["status"] == "stopped"]
    assert len(stopped) >= 2 and (stopped["epochs_done"] < 4).all()


def test_sampled_space_runs_optuna_trials(local_ray, tmp_path, trial_log):
    from ablation.sweep import run_sweep

    s = space("sampled", sample={"num_samples": 3, "seed": 1, "params": {"lr": {"log": [0.01, 0.5]}}})
    outcome = run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    table = read_results(outcome.run_dir)
    assert len(table) == 3 and set(table["status"]) == {"completed"}
    assert "lr" in table.columns and table["lr"].between(0.01, 0.5).all() and table["lr"].nunique() == 3


def test_existing_sweep_needs_resume(local_ray, tmp_path, trial_log):
    from ablation.sweep import run_sweep

    s = space("again", grid={"seed": [0]})
    run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    with pytest.raises(ConfigError, match="--resume"):
        run_sweep(s, storage=tmp_path, trial_fn=fake_trial, verbose=0)
    changed = space("again", grid={"seed": [0, 1]})
    with pytest.raises(ConfigError, match="different version"):
        run_sweep(changed, storage=tmp_path, resume=True, trial_fn=fake_trial, verbose=0)
    before = trial_log.read_text()
    outcome = run_sweep(s, storage=tmp_path, resume=True, trial_fn=fake_trial, verbose=0)
    assert outcome.counts == {"completed": 1} and trial_log.read_text() == before  # nothing re-run


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import ray.cloudpickle
import test_sweep
from ablation.space import parse_space
from ablation.sweep import run_sweep
ray.cloudpickle.register_pickle_by_value(test_sweep)
space = parse_space({space!r})
run_sweep(space, storage={storage!r}, trial_fn=test_sweep.fake_trial, resume="--resume" in sys.argv, verbose=0)
"""


def test_sweep_killed_mid_way_resumes_without_rerunning(tmp_path):
    """SIGKILL the whole driver (and its Ray) while a trial is mid-way, then resume: every
    epoch of every trial runs exactly once, and the table matches an uninterrupted sweep."""
    spec = {"name": "killed", "base": dict(TINY_BASE), "grid": {"seed": [0, 1, 2, 3]},
            "budget": {"epochs": 3, "max_concurrent": 1, "max_failures": 0}, "resources": {"cpu": 1}}
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(Path(__file__).parent), space=spec, storage=str(tmp_path / "runs")))
    pause, trial_log = tmp_path / "paused", tmp_path / "trials.log"
    env = {**os.environ, "FAKE_TRIAL_PAUSE": str(pause), "FAKE_TRIAL_LOG": str(trial_log)}
    proc = subprocess.Popen([sys.executable, str(script)], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while not pause.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]
            assert time.time() < deadline, "the sweep never reached the paused trial"
            time.sleep(0.5)
        time.sleep(3)  # Tune snapshots its state every second
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run_dir = tmp_path / "runs" / "killed"
    mid = read_results(run_dir).set_index("seed")
    assert list(mid.loc[[0, 1], "status"]) == ["completed", "completed"]
    assert 3 not in mid.index or mid.loc[3, "status"] == "pending"  # trials are created as slots free up

    resumed = subprocess.run([sys.executable, str(script), "--resume"], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    runs = [tuple(line.split()[1:]) for line in trial_log.read_text().splitlines()]
    assert sorted(runs) == sorted((str(s), str(e)) for s in range(4) for e in range(1, 4))  # each once
    table = read_results(run_dir)
    assert len(table) == 4 and set(table["status"]) == {"completed"} and set(table["epochs_done"]) == {3}


# --- clear errors before any trial starts (no Ray needed) ---

def _write_space(tmp_path, **base) -> Path:
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": {**TINY_BASE, **base}, "grid": {"seed": [0]},
                                    "budget": {"epochs": 1}}))
    return path


@pytest.mark.parametrize("args, fragment", [
    (["--storage", "{tmp}/file.txt/runs"], "is not writable"),
    (["--address", "127.0.0.1:9"], "no Ray cluster reachable"),
    (["--address", "nonsense"], "expected HOST:PORT"),
    (["--max-concurrent", "0"], "--max-concurrent"),
])
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
