"""Faults injected for real: the sweep driver SIGKILLed and resumed, trials that die (SIGKILL,
exception, out of memory, non-finite loss), reports generated while a sweep runs, and crashes
while results or reports are written. Bad input: ``test_bad_input.py``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from ablation.run.epochs import read_epochs
from ablation.analysis.report import REPORT_FILES, write_report
from ablation.run.results import RESULTS_FILE, SWEEP_FILE, read_results
from report_fixtures import trial_row, write_run
from sweep_fixtures import DEATHS, TINY_BASE, dying_trial, space

TESTS = Path(__file__).parent

DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import ray.cloudpickle
import sweep_fixtures
from ablation.design.space import parse_space
from ablation.run.sweep import run_sweep
ray.cloudpickle.register_pickle_by_value(sweep_fixtures)
outcome = run_sweep(parse_space({space!r}), storage=sys.argv[1], trial_fn=sweep_fixtures.fake_trial,
                    resume="--resume" in sys.argv, verbose=0)
print("COUNTS", outcome.counts)
"""

#: Four trials, one at a time; the one with seed 2 pauses at epoch 2 (see sweep_fixtures._hold).
SPEC = {
    "name": "faults",
    "base": dict(TINY_BASE),
    "grid": {"seed": [0, 1, 2, 3]},
    "budget": {"epochs": 3, "max_concurrent": 1, "max_failures": 0},
    "resources": {"cpu": 1},
}
COMPARED = ["variant", "seed", "status", "epochs_done", "top1", "best_top1", "error"]


def _driver(tmp_path: Path, **env: str) -> tuple[list[str], dict[str, str]]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), space=SPEC))
    full_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full_env.update(FAKE_TRIAL_LOG=str(tmp_path / "trials.log"), **env)
    return [sys.executable, str(script)], full_env


def _wait_for(path: Path, proc: subprocess.Popen, timeout: float = 240) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read().decode()[-3000:]
        assert time.time() < deadline, f"the sweep never reached {path.name}"
        time.sleep(0.3)


def _epochs_run(log: Path) -> list[tuple[str, str]]:
    return sorted(tuple(line.split()[1:]) for line in log.read_text().splitlines() if line.startswith("epoch"))


@pytest.mark.slow
def test_driver_sigkilled_mid_sweep_resumes_to_the_uninterrupted_result(tmp_path):
    """SIGKILL the driver (and its Ray) while a trial is mid-way, then ``--resume``: every epoch of
    every trial runs exactly once (finished trials are not re-run, the interrupted one continues
    from its checkpoint) and results.csv equals that of a sweep never interrupted."""
    cmd, env = _driver(tmp_path, FAKE_TRIAL_PAUSE=str(tmp_path / "paused"))
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "killed")],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for(tmp_path / "paused", proc)
        time.sleep(3)  # Tune snapshots its state every second
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    mid = read_results(tmp_path / "killed" / SPEC["name"]).set_index("seed")
    assert list(mid.loc[[0, 1], "status"]) == ["completed", "completed"]
    assert mid.loc[2, "status"] in ("running", "pending")
    mid_epochs = read_epochs(tmp_path / "killed" / SPEC["name"])  # written as trials report, not at the end
    assert sorted(zip(mid_epochs["seed"], mid_epochs["epoch"])) == [
        (0, 1),
        (0, 2),
        (0, 3),
        (1, 1),
        (1, 2),
        (1, 3),
        (2, 1),
    ]
    killed_wall = json.loads((tmp_path / "killed" / SPEC["name"] / SWEEP_FILE).read_text())["wall_time_s"]
    assert killed_wall > 0  # the killed driver's time is on disk

    resumed = subprocess.run([*cmd, str(tmp_path / "killed"), "--resume"], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert _epochs_run(tmp_path / "trials.log") == [(str(s), str(e)) for s in range(4) for e in range(1, 4)]
    assert json.loads((tmp_path / "killed" / SPEC["name"] / SWEEP_FILE).read_text())["wall_time_s"] > killed_wall

    clean_env = {**env, "FAKE_TRIAL_LOG": str(tmp_path / "clean.log")}
    clean = subprocess.run([*cmd, str(tmp_path / "clean")], env=clean_env, capture_output=True, timeout=300)
    assert clean.returncode == 0, clean.stderr.decode()[-3000:]
    killed = read_results(tmp_path / "killed" / SPEC["name"])[COMPARED].sort_values("seed", ignore_index=True)
    uninterrupted = read_results(tmp_path / "clean" / SPEC["name"])[COMPARED].sort_values("seed", ignore_index=True)
    assert set(killed["status"]) == {"completed"}
    pd.testing.assert_frame_equal(killed, uninterrupted)
    curves = ["variant", "seed", "epoch", "train_loss", "val_loss", "top1", "top5", "lr"]
    killed_epochs, clean_epochs = (
        read_epochs(tmp_path / d / SPEC["name"])[curves].sort_values(["seed", "epoch"], ignore_index=True)
        for d in ("killed", "clean")
    )
    assert len(clean_epochs) == 12
    pd.testing.assert_frame_equal(killed_epochs, clean_epochs)


@pytest.mark.slow
def test_driver_sigint_stops_cleanly_and_resumes(tmp_path):
    """SIGINT to the driver alone (Ctrl-C, or ``timeout -s INT`` at a job's wall-clock limit) while
    seed 2 is mid-way: Tune saves its state and the driver returns promptly, without waiting for the
    paused trial, with that trial pending and the finished ones kept; ``--resume`` then runs every
    remaining epoch once and completes the sweep."""
    cmd, env = _driver(tmp_path, FAKE_TRIAL_PAUSE=str(tmp_path / "paused"))
    run_dir = tmp_path / "stopped" / SPEC["name"]
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "stopped")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        _wait_for(tmp_path / "paused", proc)
        time.sleep(2)  # seed 2's epoch-1 checkpoint is saved
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=90)  # the paused trial would hold for 120 s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err[-3000:]
    mid = read_results(run_dir).set_index("seed")  # seed 3 is pending, or not yet created
    assert list(mid.loc[[0, 1, 2], "status"]) == ["completed", "completed", "pending"]
    assert f"COUNTS {{'completed': 2, 'pending': {len(mid) - 2}}}" in out
    resumed = subprocess.run([*cmd, str(tmp_path / "stopped"), "--resume"], env=env, capture_output=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr.decode()[-3000:]
    assert "COUNTS {'completed': 4}" in resumed.stdout.decode()
    assert _epochs_run(tmp_path / "trials.log") == [(str(s), str(e)) for s in range(4) for e in range(1, 4)]


@pytest.mark.slow
def test_dying_trials_are_retried_then_failed_with_their_reason_and_reported(local_ray, tmp_path, trial_log):
    from ablation.run.sweep import run_sweep

    s = space("dying", grid={"seed": [0, *DEATHS, 5]}, max_failures=1)
    outcome = run_sweep(s, storage=tmp_path, trial_fn=dying_trial, verbose=0)
    table = read_results(outcome.run_dir).set_index("seed")
    assert outcome.counts == {"completed": 2, "failed": len(DEATHS)}
    assert list(table.loc[[0, 5], "status"]) == ["completed", "completed"]
    assert set(table.loc[[0, 5], "epochs_done"]) == {2}
    attempts = [line.split()[1] for line in trial_log.read_text().splitlines() if line.startswith("attempt")]
    assert sorted(attempts) == sorted(str(seed) for seed in DEATHS for _ in range(2))  # first try + 1 retry
    reasons = {
        1: "died",
        2: "ValueError: bad batch in the data loader",
        3: "OutOfMemoryError: CUDA out of memory",
        4: "NonFiniteLossError: non-finite training loss",
    }
    for seed, reason in reasons.items():
        assert table.loc[seed, "status"] == "failed"
        assert reason in table.loc[seed, "error"], (seed, table.loc[seed, "error"])

    report = (write_report(outcome.run_dir, tmp_path / "report") / "report.md").read_text()
    failures = report[report.index("Failed trials") :]
    for seed in reasons:
        assert table.loc[seed, "error"].replace("|", "\\|")[:60] in failures


@pytest.mark.slow
def test_two_reports_while_the_sweep_runs_do_not_disturb_it(tmp_path):
    pause, release = tmp_path / "paused", tmp_path / "release"
    cmd, env = _driver(tmp_path, FAKE_TRIAL_PAUSE=str(pause), FAKE_TRIAL_RELEASE=str(release))
    proc = subprocess.Popen(
        [*cmd, str(tmp_path / "runs")],
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    run_dir = tmp_path / "runs" / SPEC["name"]
    try:
        _wait_for(pause, proc)
        reports = [
            subprocess.Popen(
                [sys.executable, "-m", "ablation.cli", "report", str(run_dir), "--out", str(tmp_path / f"report{i}")],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for i in range(2)
        ]
        done = [(p.wait(timeout=300), p.stderr.read().decode()) for p in reports]
        release.write_text("go")
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    for i, (code, err) in enumerate(done):
        assert code == 0, err[-3000:]
        text = (tmp_path / f"report{i}" / "report.md").read_text()
        assert "2 completed" in text and "still running" in text
    assert _epochs_run(tmp_path / "trials.log") == [(str(s), str(e)) for s in range(4) for e in range(1, 4)]
    table = read_results(run_dir)
    assert len(table) == 4 and set(table["status"]) == {"completed"}
    import optuna

    study = optuna.load_study(study_name=SPEC["name"], storage=f"sqlite:///{run_dir / 'optuna.db'}")
    assert len(study.trials) == 1  # the one variant (seeds aggregate) completed when the reports ran
    assert not list(run_dir.glob(".*.tmp"))


@pytest.mark.parametrize("crash_in", ["fsync", "replace"])
def test_crash_while_writing_leaves_the_previous_version(tmp_path, monkeypatch, crash_in):
    """A crash while writing (before the rename, or at it) leaves the previous results.csv and
    report files whole, and no temporary files behind."""
    from ablation.design.config import TrialConfig
    from ablation.run.results import TrialRecord, write_results

    rows = [trial_row(i, seed=i, top1=80.0 + i, top5=99.0, val_loss=0.5, params=1e5, flops=1e7) for i in range(3)]
    run_dir = write_run(tmp_path / "run", rows)
    out = write_report(run_dir, tmp_path / "report")
    before = {p: p.read_bytes() for p in [run_dir / RESULTS_FILE, *(out / f for f in REPORT_FILES)]}

    real = {"fsync": os.fsync, "replace": os.replace}[crash_in]

    def crash(*args):
        target = str(args[-1])
        if crash_in == "fsync" or target.endswith(("report.md", RESULTS_FILE)):
            raise OSError(f"simulated crash in {crash_in}")
        return real(*args)

    monkeypatch.setattr(os, crash_in, crash)
    with pytest.raises(OSError, match="simulated crash"):
        write_results(run_dir, [TrialRecord("t9", TrialConfig().model_dump(), "failed", "boom", [])])
    with pytest.raises(OSError, match="simulated crash"):
        write_report(run_dir, out)
    monkeypatch.undo()
    assert (run_dir / RESULTS_FILE).read_bytes() == before[run_dir / RESULTS_FILE]
    assert (out / "report.md").read_bytes() == before[out / "report.md"]
    if crash_in == "fsync":
        assert all(p.read_bytes() == data for p, data in before.items())
    assert not list(run_dir.glob(".*.tmp")) and not list(out.glob(".*.tmp"))
