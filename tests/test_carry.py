"""Trials carried from earlier sweeps (``ablate sweep --carry RUN``): which trials qualify, and a
seed-budget sweep that carries seeds 0-1 training only the rest, with the results and decisions of
a sweep that trained everything."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from ablation.design.space import parse_space, trial_config
from ablation.errors import ConfigError
from ablation.run.carry import carry_trials
from ablation.run.results import read_results
from ablation.run.sweep import run_sweep
from sweep_fixtures import TINY_BASE, kill_when_paused, noisy_top1, procedure_pairs, ran_pairs

TESTS = Path(__file__).parent
SEEDS = {"min": 2, "max": 5, "alpha": 0.05, "equivalence": 0.5}
GRID = {"attention": ["none", "sca"], "kernel_size": [3, 5, 7]}


def spec(name: str, seeds: bool = True, grid=None, epochs: int = 1, concurrent: int = 2) -> dict:
    budget: dict = {"epochs": epochs, "max_failures": 0, "max_concurrent": concurrent}
    if seeds:
        budget["seeds"] = dict(SEEDS)
    return {
        "name": name,
        "base": dict(TINY_BASE),
        "grid": grid or GRID,
        "budget": budget,
        "resources": {"cpu": 1},
    }


def fake_run(run_dir: Path, trials: list[tuple[dict, str, str]]) -> Path:
    """A run directory as a sweep leaves it: ``results.csv`` and, per trial, Tune's
    ``params.json`` and ``result.json``; ``trials`` are (point, status, train_setup)."""
    run_dir.mkdir(parents=True)
    rows = []
    for i, (point, status, setup) in enumerate(trials):
        trial_id = f"t{i:03d}"
        folder = run_dir / f"trial_{trial_id}"
        folder.mkdir()
        (folder / "params.json").write_text(json.dumps({"point": point}))
        epochs = trial_config(point).epochs
        lines = [
            {"epoch": e, "top1": 50.0 + e, "test_top1": 49.0 + e, "train_setup": setup} for e in range(1, epochs + 1)
        ]
        (folder / "result.json").write_text("\n".join(json.dumps(r) for r in lines) + "\n")
        rows.append({"trial_id": trial_id, "status": status})
    pd.DataFrame(rows).to_csv(run_dir / "results.csv", index=False)
    return run_dir


def test_only_completed_trials_of_the_space_trained_this_machines_way_are_carried(tmp_path):
    from ablation.run.carry import _setup_here

    space = parse_space(spec("new", epochs=2))
    point = {**TINY_BASE, "attention": "sca", "kernel_size": 5, "epochs": 2}
    here = _setup_here(trial_config({**point, "seed": 0}).model_dump())
    run = fake_run(
        tmp_path / "old",
        [
            ({**point, "seed": 0}, "completed", here),  # carried
            ({**point, "seed": 1}, "failed", here),  # not finished
            ({**point, "seed": 2, "epochs": 1}, "completed", here),  # another budget
            ({**point, "seed": 3}, "completed", "fast: bf16 autocast, channels_last, compiled"),  # another setup
            ({**point, "seed": 7}, "completed", here),  # beyond the budget's 5 seeds
            ({**point, "seed": 4, "lr": 0.05}, "completed", here),  # another config
        ],
    )
    carried = carry_trials([run], space)
    assert [(r.trial_id, r.config["seed"]) for r in carried] == [("t000", 0)]
    assert carried[0].history[-1]["top1"] == 52.0 and len(carried[0].history) == 2
    elsewhere = carry_trials([run], space, check_setup=False)  # on a cluster: the setup is the nodes'
    assert sorted(r.config["seed"] for r in elsewhere) == [0, 3]
    with pytest.raises(ConfigError, match=r"^--carry .*nowhere: no such run directory$"):
        carry_trials([tmp_path / "nowhere"], space)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"^--carry .*empty: no results\.csv there"):
        carry_trials([tmp_path / "empty"], space)
    with pytest.raises(ConfigError, match=r"no completed trial there has a trial config of 'other'"):
        carry_trials([run], parse_space(spec("other", epochs=3)))


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import ray.cloudpickle
import sweep_fixtures
from ablation.design.space import parse_space
from ablation.run.sweep import run_sweep
ray.cloudpickle.register_pickle_by_value(sweep_fixtures)
carry = tuple(a.removeprefix("--carry=") for a in sys.argv[2:] if a.startswith("--carry="))
out = run_sweep(parse_space({space!r}), storage=sys.argv[1], trial_fn=sweep_fixtures.noisy_trial,
                resume="--resume" in sys.argv, verbose=0, carry=carry)
print("COUNTS", out.counts)
"""


def _command(tmp_path: Path, space: dict, storage: str, *args: str, log: str, **env: str):
    script = tmp_path / f"driver_{space['name']}.py"
    script.write_text(DRIVER.format(tests=str(TESTS), space=space))
    full_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full_env.update(FAKE_TRIAL_LOG=str(tmp_path / log), **env)
    return [sys.executable, str(script), str(tmp_path / storage), *args], full_env


def _sweep(tmp_path: Path, space: dict, storage: str, *args: str, log: str) -> str:
    """Run a sweep to its end; what its trials trained (the fake trials' log)."""
    cmd, env = _command(tmp_path, space, storage, *args, log=log)
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    return (tmp_path / log).read_text() if (tmp_path / log).exists() else ""


def _killed_at_seed_2(tmp_path: Path, space: dict, storage: str, *args: str, log: str) -> None:
    """Start a sweep and SIGKILL its driver while a seed-2 trial is mid-way (sweep_fixtures._hold)."""
    paused = tmp_path / "paused"
    cmd, env = _command(tmp_path, space, storage, *args, log=log, FAKE_TRIAL_PAUSE=str(paused))
    kill_when_paused(cmd, env, paused)


@pytest.mark.slow
def test_a_seed_budget_sweep_carrying_seeds_0_and_1_trains_only_the_rest_and_decides_the_same(tmp_path):
    """Carried seeds 0-1, killed mid-way and resumed: every other epoch trained once, none of
    seeds 0-1, and the trials and results the procedure gives when it trains everything."""
    from ablation.analysis.report import write_report

    seeds01 = spec("first", seeds=False, grid={**GRID, "seed": [0, 1]}, epochs=2)
    _sweep(tmp_path, seeds01, "runs", log="first.log")
    # one trial at a time, as in test_seed_search's kill, so that the kill finds only the held
    # trial running: with 2 at once, 1 run in 7 on a loaded machine ended with a trial not
    # completed after the resume (cause not found)
    study, carry = spec("study", epochs=2, concurrent=1), f"--carry={tmp_path / 'runs' / 'first'}"
    _killed_at_seed_2(tmp_path, study, "runs", carry, log="study.log")
    trained = _sweep(tmp_path, study, "runs", "--resume", log="study.log").splitlines()
    assert trained and not [ln for ln in trained if ln.split()[1] in ("0", "1")]  # seeds 0-1 not again
    assert len(trained) == len(set(trained))  # every epoch once, across the kill
    table = read_results(tmp_path / "runs" / "study")
    assert set(table["status"]) == {"completed"}, table[["trial_id", "kernel_size", "seed", "status", "error"]]
    assert ran_pairs(table) == procedure_pairs(study, tmp_path)  # what the procedure runs from scratch
    for row in table.itertuples():  # every trial's result is its own (noisy_trial: fixed by variant and seed)
        kernel = None if pd.isna(row.kernel_size) else int(row.kernel_size)
        cfg = trial_config(
            {**TINY_BASE, "attention": row.attention, "kernel_size": kernel, "seed": row.seed, "epochs": 2}
        )
        assert row.test_top1 == pytest.approx(noisy_top1(cfg, 2) - 1.0)
    first_ids = set(read_results(tmp_path / "runs" / "first")["trial_id"])
    assert first_ids <= set(read_results(tmp_path / "runs" / "study")["trial_id"])  # under their own ids
    info = json.loads((tmp_path / "runs" / "study" / "sweep.json").read_text())
    assert info["carried"]["from"] == ["first"] and sorted(info["carried"]["trial_ids"]) == sorted(first_ids)
    epochs = pd.read_csv(tmp_path / "runs" / "study" / "epochs.csv")
    assert first_ids <= set(epochs["trial_id"])  # their curves too
    text = (write_report(tmp_path / "runs" / "study", tmp_path / "report") / "report.md").read_text()
    assert f"carried over: {len(first_ids)} completed trials from first (`--carry`" in text
    with pytest.raises(ConfigError, match="already holds sweep 'study'; trials are carried when a sweep starts"):
        run_sweep(parse_space(study), storage=tmp_path / "runs", resume=True, carry=(str(tmp_path / "runs" / "first"),))
