"""Seeds as a budget: the space's ``budget.seeds``, the comparisons it runs, the Tune searcher that
spends seeds where comparisons are open (driven directly, then in real sweeps on a local Ray,
with ASHA, and across a driver SIGKILL and ``--resume``), and the report's decision table."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ablation.errors import ConfigError
from ablation.run.results import read_results
from ablation.design.seed_budget import cell_key, comparisons, decisions, state_of
from ablation.run.seed_search import SeedSearcher
from ablation.design.space import parse_space, trial_config
from sweep_fixtures import TINY_BASE, drive, kill_when_paused, procedure_pairs, ran_pairs, value

TESTS = Path(__file__).parent
SEEDS = {"min": 2, "max": 5, "alpha": 0.05, "equivalence": 0.5}


def spec(name: str = "seeds", epochs: int = 1, seeds: dict = SEEDS, grid=None, **budget) -> dict:
    grid = grid or {"attention": ["none", "sca"], "kernel_size": [3, 5, 7]}
    return {
        "name": name,
        "base": dict(TINY_BASE),
        "grid": grid,
        "budget": {"epochs": epochs, "max_failures": 0, "seeds": dict(seeds), **budget},
        "resources": {"cpu": 1},
    }


def test_seed_budget_space_expands_to_max_seeds_and_names_bad_keys():
    space = parse_space(spec())
    assert space.num_trials == 4 * 5 and sorted({p["seed"] for p in space.points()}) == list(range(5))
    with pytest.raises(ConfigError, match=r"grid\.seed: the seeds come from budget\.seeds"):
        parse_space(spec(grid={"attention": ["none", "sca"], "seed": [0, 1]}))
    with pytest.raises(ConfigError, match=r"budget\.seeds: variant attention=sca.*has no baseline"):
        parse_space(spec(grid={"attention": ["sca"], "kernel_size": [3, 5]}))
    with pytest.raises(ConfigError, match=r"budget\.seeds: no variant in the grid matches reference"):
        parse_space(spec(seeds={**SEEDS, "reference": {"attention": "eca"}}))
    with pytest.raises(ConfigError, match=r"budget\.seeds.*min \(6\) exceeds max \(5\)"):
        parse_space(spec(seeds={**SEEDS, "min": 6}))
    with pytest.raises(ConfigError, match=r"budget\.seeds\.mxa: unknown key"):
        parse_space(spec(seeds={"mxa": 3}))
    with pytest.raises(ConfigError, match=r"budget\.seeds\.family: Input should be 'study' or 'comparison'"):
        parse_space(spec(seeds={**SEEDS, "family": "experiment"}))
    with pytest.raises(ConfigError, match=r"statistics\.family: Input should be 'study' or 'comparison'"):
        parse_space({**spec(), "statistics": {"family": "experiment"}})


def test_comparisons_pair_each_variant_with_its_baseline_and_the_reference():
    points = parse_space(spec(seeds={**SEEDS, "reference": {"attention": "sca", "kernel_size": 3}})).points()
    comps = comparisons(points, {"attention": "sca", "kernel_size": 3})
    kinds = sorted((trial_config(json.loads(c.variant)).kernel_size, c.kind) for c in comps)
    assert kinds == [(3, "baseline"), (5, "baseline"), (5, "reference"), (7, "baseline"), (7, "reference")]


@pytest.mark.parametrize("concurrency,order", [(1, "fifo"), (3, "fifo"), (4, "lifo")])
def test_searcher_adds_seeds_only_where_a_comparison_is_open(tmp_path, concurrency, order):
    space = parse_space(spec())
    searcher = SeedSearcher(space.points(), space.seed_budget.plan(), 1, tmp_path)
    asked = drive(searcher, concurrency, order)
    plan = searcher.plan  # sized to the study: alpha split over its comparisons
    keys = [cell_key(p) for p in asked]
    assert len(set(zip(keys, (p["seed"] for p in asked)))) == len(asked)  # no seed twice
    values = {(cell_key(p), p["seed"]): value(p) for p in asked}
    seeds = {k: sorted(p["seed"] for p in asked if cell_key(p) == k) for k in set(keys)}
    assert all(s == list(range(len(s))) and len(s) >= plan.min_seeds for s in seeds.values())
    for key, ran in seeds.items():  # every seed past min: a comparison of it was open one seed earlier
        for seed in ran[plan.min_seeds :]:
            before = {k: v for k, v in values.items() if k[1] < seed}
            assert any(key in (c.variant, c.other) and state_of(c, before, plan).open for c in searcher.comparisons)
    states = [state_of(c, values, plan) for c in searcher.comparisons]
    assert all(not s.open for s in states)  # nothing is left open at the end
    decided = {trial_config(json.loads(s.comparison.variant)).kernel_size: s.decision.decision for s in states}
    assert decided[5] == "worse" and decided[7] == "better"  # true effects -8 and +8 points, noise sd 1
    assert len(asked) < space.num_trials  # fewer trials than max seeds everywhere


def test_search_order_does_not_change_what_runs(tmp_path):
    space = parse_space(spec())
    runs = [
        sorted(
            (cell_key(p), p["seed"])
            for p in drive(SeedSearcher(space.points(), space.seed_budget.plan(), 1, tmp_path), c, o)
        )
        for c, o in [(1, "fifo"), (2, "lifo"), (5, "fifo")]
    ]
    assert runs[0] == runs[1] == runs[2]


def test_a_trial_stopped_early_ends_its_comparisons(tmp_path):
    """A scheduler (ASHA) that stops a variant's trial ends that variant's comparisons there."""
    space = parse_space(spec(epochs=3))
    searcher = SeedSearcher(space.points(), space.seed_budget.plan(), 3, tmp_path)
    asked = drive(searcher, 2, "fifo", epochs=3, stop=lambda p: p["kernel_size"] == 5 and p["seed"] == 1)
    ran5 = sorted(p["seed"] for p in asked if p.get("kernel_size") == 5)
    assert ran5 == [0, 1]
    state = next(
        state_of(c, searcher.values, searcher.plan) for c in searcher.comparisons if '"kernel_size": 5' in c.variant
    )
    assert state.stopped.startswith("seed 1")


DRIVER = """
import sys
sys.path.insert(0, {tests!r})
import ray.cloudpickle
import sweep_fixtures
from ablation.design.space import parse_space
from ablation.run.sweep import run_sweep
ray.cloudpickle.register_pickle_by_value(sweep_fixtures)
out = run_sweep(parse_space({space!r}), storage=sys.argv[1], trial_fn=sweep_fixtures.noisy_trial,
                resume="--resume" in sys.argv, verbose=0)
print("COUNTS", out.counts)
"""


def _driver(tmp_path: Path, space: dict, **env: str) -> tuple[list[str], dict[str, str]]:
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(TESTS), space=space))
    full_env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    full_env.update(FAKE_TRIAL_LOG=str(tmp_path / "trials.log"), **env)
    return [sys.executable, str(script)], full_env


@pytest.mark.slow
def test_sweep_with_a_seed_budget_runs_what_the_procedure_asks_and_reports_it(tmp_path):
    from ablation.analysis.report import BUDGET_CAVEAT, write_report

    space = spec("budget", epochs=1, max_concurrent=2)
    cmd, env = _driver(tmp_path, space)
    done = subprocess.run([*cmd, str(tmp_path / "runs")], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    table = read_results(tmp_path / "runs" / "budget")
    assert set(table["status"]) == {"completed"}
    assert ran_pairs(table) == procedure_pairs(space, tmp_path)  # the sweep did what the procedure, run alone, does
    out = write_report(tmp_path / "runs" / "budget", tmp_path / "report")
    text = (out / "report.md").read_text()
    assert "## Seeds until decided" in text and "Lan-DeMets O'Brien-Fleming" in text
    assert "familywise over the study's 3 comparisons" in text and "MDE (80%)" in text
    assert BUDGET_CAVEAT in text  # the nominal per-variant intervals say so
    delta = text.split("## Difference to no attention")[1].split("\n## ")[0]
    assert BUDGET_CAVEAT in delta  # and so do the tests against no attention, which ignore the looks
    found, spent = decisions(table, parse_space(space).seed_budget.plan(), epochs=1)
    kernel = dict(zip(table["variant"], table["kernel_size"]))
    by_kernel = {kernel[v]: d for v, d in zip(found["variant"], found["decision"])}
    assert (by_kernel[5], by_kernel[7]) == ("worse", "better")  # true effects -8 and +8, noise sd 1
    assert f"{int(spent['trials'])} trials of {int(spent['trials_max'])}" in text


@pytest.mark.slow
def test_seed_budget_sweep_with_asha_stops_the_losers_comparisons(tmp_path):
    space = spec("asha", epochs=3, scheduler="asha", grace_period=1, reduction_factor=2, max_concurrent=1)
    cmd, env = _driver(tmp_path, space)
    done = subprocess.run([*cmd, str(tmp_path / "runs")], env=env, capture_output=True, text=True, timeout=400)
    assert done.returncode == 0, done.stderr[-3000:]
    table = read_results(tmp_path / "runs" / "asha")
    found, _ = decisions(table, parse_space(space).seed_budget.plan(), epochs=3)
    stopped = table[table["status"] == "stopped"]
    assert not stopped.empty  # ASHA stopped some trials (k=5 is 8 points behind the rest)
    for variant, seeds in stopped.groupby("variant")["seed"]:  # no seed added to a variant after ASHA stopped it
        assert table.loc[table["variant"] == variant, "seed"].max() <= max(seeds.min(), SEEDS["min"] - 1)
    assert found["decision"].str.startswith("stopped").any()


@pytest.mark.slow
def test_driver_sigkilled_mid_budget_resumes_without_losing_or_repeating_a_seed(tmp_path):
    """SIGKILL the driver while a seed-2 trial (one added by the procedure, past min) is mid-way;
    ``--resume`` finishes with exactly the trials and results of an uninterrupted sweep, and
    every epoch of every (variant, seed) ran once."""
    space = spec("killed", epochs=3, max_concurrent=1, seeds={**SEEDS, "max": 4})
    cmd, env = _driver(tmp_path, space, FAKE_TRIAL_PAUSE=str(tmp_path / "paused"))
    kill_when_paused([*cmd, str(tmp_path / "a")], env, tmp_path / "paused")
    mid = read_results(tmp_path / "a" / "killed")
    assert set(mid.loc[mid["seed"] == 2, "status"]) & {"running", "pending"}
    resumed = subprocess.run(
        [*cmd, str(tmp_path / "a"), "--resume"], env=env, capture_output=True, text=True, timeout=400
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    clean_env = {**env, "FAKE_TRIAL_LOG": str(tmp_path / "clean.log")}
    clean = subprocess.run([*cmd, str(tmp_path / "b")], env=clean_env, capture_output=True, text=True, timeout=400)
    assert clean.returncode == 0, clean.stderr[-3000:]
    compared = ["kernel_size", "seed", "status", "epochs_done", "top1", "test_top1"]
    a, b = (
        read_results(tmp_path / d / "killed").sort_values(["kernel_size", "seed"], ignore_index=True)[compared]
        for d in ("a", "b")
    )
    if not a.equals(b):  # say how, with what the resumed driver printed
        pytest.fail(
            f"resumed and uninterrupted sweeps differ:\n{a.to_string()}\n{a.dtypes.to_dict()}\n"
            f"{b.to_string()}\n{b.dtypes.to_dict()}\n{resumed.stderr[-4000:]}"
        )
    epochs = sorted(
        line.split()[1:] for line in (tmp_path / "trials.log").read_text().splitlines() if line.startswith("epoch")
    )
    assert len(epochs) == len(set(map(tuple, epochs))) == 3 * len(a)  # every epoch of every trial, once
