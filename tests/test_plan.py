"""`ablate plan`: budgets of a pilot, their convergence, spread and cost per decision, and a
space's cost, from hand-made results files (no training)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from ablation.cli import main
from ablation.analysis.detectable import mde, power
from ablation.run.epochs import EPOCHS_FILE, epochs_table
from ablation.analysis.plan import (
    budget_keys,
    concurrent,
    load_pilot,
    plan_pilot,
    pooled_sd,
    sd_interval,
    seeds_needed,
    space_cost,
)
from ablation.design.space import load_space
from report_fixtures import trial_row, write_run

EPOCHS = 15


def pilot_rows(budgets: dict[int, dict], seeds=(0, 1)) -> list[dict]:
    """Trials of none and sca at each ``subset`` budget: ``budgets[subset]`` gives the trial
    times (``none``, ``sca`` seconds), the compile time, each seed's test top-1 of both, and the
    baseline's validation gain over the last 3 epochs."""
    rows, i = [], 0
    for subset, b in budgets.items():
        for attention in ("none", "sca"):
            for seed in seeds:
                top1 = b["top1"][attention][seed]
                rows.append(
                    trial_row(
                        i,
                        attention=attention,
                        seed=seed,
                        subset=subset,
                        dataset="fashion-mnist",
                        epochs=EPOCHS,
                        epochs_done=EPOCHS,
                        kernel_size=3 if attention == "sca" else None,
                        val_split=0.1,
                        top1=top1 + 0.3,
                        test_top1=top1,
                        train_time_s=b[attention],
                        compile_time_s=b["compile"],
                        images_per_s=subset * EPOCHS / b[attention],
                        train_images=subset,
                        val_images=6000,
                        train_path="fast",
                        gain=b["gain"] if attention == "none" else 0.05,
                    )
                )
                i += 1
    return rows


def write_pilot(run_dir: Path, rows: list[dict], finished: bool = True) -> Path:
    write_run(run_dir, [{k: v for k, v in r.items() if k != "gain"} for r in rows], name="pilot", finished=finished)
    curves = []
    for r in rows:
        if r["status"] != "completed":
            continue
        for e in range(1, EPOCHS + 1):  # rises early, then by r["gain"] over the last 3 epochs
            late = max(0, e - (EPOCHS - 3))
            top1 = r["top1"] - r["gain"] + r["gain"] * late / 3 - max(0, EPOCHS - 3 - e)
            curves.append(
                {
                    "trial_id": r["trial_id"],
                    "variant": r["variant"],
                    "backbone": r["backbone"],
                    "attention": r["attention"],
                    "seed": r["seed"],
                    "epoch": e,
                    "train_loss": 0.3,
                    "val_loss": 0.3,
                    "top1": top1,
                    "top5": 99.0,
                    "lr": 0.1,
                    "epoch_time_s": 1.0,
                }
            )
    epochs_table(curves).to_csv(run_dir / EPOCHS_FILE, index=False)
    return run_dir


#: Budget 10000: cheap, noisy (paired differences 0.5 and 2.5); budget 20000: dearer, steady
#: (paired differences 1.0 and 1.2).
BUDGETS = {
    10000: {
        "none": 90.0,
        "sca": 140.0,
        "compile": 10.0,
        "gain": 0.1,
        "top1": {"none": {0: 88.0, 1: 89.0}, "sca": {0: 88.5, 1: 91.5}},
    },
    20000: {
        "none": 190.0,
        "sca": 290.0,
        "compile": 10.0,
        "gain": 0.15,
        "top1": {"none": {0: 90.0, 1: 90.5}, "sca": {0: 91.0, 1: 91.7}},
    },
}


@pytest.fixture
def pilot_dir(tmp_path):
    return write_pilot(tmp_path / "pilot", pilot_rows(BUDGETS))


def test_budgets_are_the_keys_that_differ_but_attention_and_seed(pilot_dir):
    pilot = load_pilot(pilot_dir)
    assert pilot.keys == ["subset"]
    assert budget_keys(pilot.results) == ["subset"]
    assert pilot.results.groupby("budget").size().to_dict() == {"subset=10000": 4, "subset=20000": 4}
    assert set(pilot.results["variant_label"]) == {"none", "sca"}
    assert pilot.results["trial_time_s"].tolist()[:2] == [100.0, 100.0]  # training + compilation


def test_flatness_from_the_baseline_curves(tmp_path):
    budgets = {**BUDGETS, 20000: {**BUDGETS[20000], "gain": 0.6}}
    plan = plan_pilot(load_pilot(write_pilot(tmp_path / "p", pilot_rows(budgets))))
    small, big = (b.budget for b in plan.budgets)
    assert small["baseline_gains"] == pytest.approx({0: 0.1, 1: 0.1})
    assert small["flat"] is True
    assert big["baseline_gains"] == pytest.approx({0: 0.6, 1: 0.6})
    assert big["flat"] is False
    looser = plan_pilot(load_pilot(tmp_path / "p"), flat=1.0)
    assert [b.budget["flat"] for b in looser.budgets] == [True, True]


def test_paired_difference_and_its_sd(pilot_dir):
    plan = plan_pilot(load_pilot(pilot_dir))
    small = plan.budgets[0]
    sca = next(v for v in small.variants if v["variant"] == "sca")
    assert sca["diff_mean"] == pytest.approx(1.5)  # (0.5 + 2.5) / 2
    assert sca["diff_sd"] == pytest.approx(np.std([0.5, 2.5], ddof=1))
    assert sca["top1_mean"] == pytest.approx(90.0)
    assert sca["top1_sd"] == pytest.approx(np.std([88.5, 91.5], ddof=1))
    assert small.budget["sd"] == pytest.approx(np.std([0.5, 2.5], ddof=1)) and small.budget["df"] == 1
    lo, hi = small.budget["sd_low"], small.budget["sd_high"]
    assert lo == pytest.approx(small.budget["sd"] * math.sqrt(1 / stats.chi2.isf(0.025, 1)))
    assert hi == pytest.approx(small.budget["sd"] * math.sqrt(1 / stats.chi2.ppf(0.025, 1)))
    assert hi / lo > 60  # 1 degree of freedom says little


def test_pooled_sd_weights_variances_by_degrees_of_freedom():
    sd, df = pooled_sd([1.0, 2.0], [1, 3])
    assert df == 4 and sd == pytest.approx(math.sqrt((1 * 1 + 3 * 4) / 4))
    assert pooled_sd([math.nan], [0]) == (pytest.approx(math.nan, nan_ok=True), 0)


def test_recommends_the_flat_budget_that_decides_most_per_cpu_hour(pilot_dir):
    plan = plan_pilot(load_pilot(pilot_dir), effect=1.0, level=0.05)
    small, big = (b.budget for b in plan.budgets)
    assert small["flat"] and big["flat"]
    for b, base, var in ((small, 100.0, 150.0), (big, 200.0, 300.0)):
        assert b["cpu_hours_per_decision"] == pytest.approx(b["seeds_needed"] * (base + var) / 3600)
    # the noisy cheap budget needs far more seeds: the steady dear one decides more per CPU-hour
    assert small["seeds_needed"] > big["seeds_needed"]
    assert big["decisions_per_cpu_hour"] > small["decisions_per_cpu_hour"]
    assert plan.recommended == "subset=20000"


def test_a_cheaper_budget_that_is_not_flat_is_not_recommended(tmp_path):
    budgets = {**BUDGETS, 10000: {**BUDGETS[10000], "top1": BUDGETS[20000]["top1"]}}  # same spread, half the time
    plan = plan_pilot(load_pilot(write_pilot(tmp_path / "a", pilot_rows(budgets))))
    assert plan.recommended == "subset=10000"
    budgets[10000] = {**budgets[10000], "gain": 0.5}
    plan = plan_pilot(load_pilot(write_pilot(tmp_path / "b", pilot_rows(budgets))))
    assert plan.recommended == "subset=20000" and plan.cheapest == "subset=10000"
    budgets[20000] = {**budgets[20000], "gain": 0.5}
    plan = plan_pilot(load_pilot(write_pilot(tmp_path / "c", pilot_rows(budgets))))
    assert plan.recommended is None
    from ablation.analysis.plan import summary_lines

    assert "No budget is flat" in summary_lines(plan)[0]


def test_seeds_needed_is_the_fewest_with_80_percent_power():
    for sd, effect, level in ((1.0, 1.0, 0.05), (2.0, 1.0, 0.05 / 4), (0.5, 1.0, 0.05), (1.5, 0.5, 0.01)):
        n = int(seeds_needed(effect, sd, level))
        assert power(effect, sd / math.sqrt(n), n - 1, level) >= 0.8
        assert mde(sd / math.sqrt(n), n - 1, level) <= effect + 1e-9  # the existing helper agrees
        if n > 2:
            assert power(effect, sd / math.sqrt(n - 1), n - 2, level) < 0.8
            assert mde(sd / math.sqrt(n - 1), n - 2, level) > effect
    # many seeds: the normal closed form n = ((z_{1-a/2} + z_{0.8}) sd / effect)^2, plus a little for t
    closed = ((stats.norm.isf(0.025) + stats.norm.ppf(0.8)) * 1.0 / 0.2) ** 2  # 196.2
    assert closed <= seeds_needed(0.2, 1.0, 0.05) <= closed + 3
    assert seeds_needed(1.0, 0.0, 0.05) == 2
    assert math.isinf(seeds_needed(0.01, 10.0, 0.05))
    assert math.isnan(seeds_needed(1.0, math.nan, 0.05))


def test_sd_interval_is_chi_square():
    lo, hi = sd_interval(1.0, 10)
    assert lo == pytest.approx(math.sqrt(10 / stats.chi2.isf(0.025, 10)))
    assert hi == pytest.approx(math.sqrt(10 / stats.chi2.ppf(0.025, 10)))


def write_space(path: Path, grid: dict, budget: dict, base: dict | None = None, cpu: float = 1) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": "study",
                "base": {"dataset": "fashion-mnist", "subset": 10000, **(base or {})},
                "budget": {"epochs": EPOCHS, **budget},
                "resources": {"cpu": cpu},
                "train": {"path": "fast"},
                "grid": {"backbone": ["resnet20"], **grid},
            }
        )
    )
    return path


def test_space_cost_is_trials_times_trial_time_over_concurrent(pilot_dir, tmp_path):
    space = load_space(write_space(tmp_path / "s.yaml", {"attention": ["none", "sca"], "seed": [0, 1, 2]}, {}))
    pilot = load_pilot(pilot_dir)
    cost = space_cost(space, pilot, plan_pilot(pilot), cores=2)
    assert cost.trials == {"min": 6, "expected": 6, "max": 6}
    assert cost.concurrent == 2
    assert cost.hours["max"] == pytest.approx(3 * (100 + 150) / 2 / 3600)
    assert [r["cost"] for r in cost.rows] == ["pilot", "pilot"]
    one_core = space_cost(space, pilot, plan_pilot(pilot), cores=1)
    assert one_core.hours["max"] == pytest.approx(2 * cost.hours["max"])
    assert concurrent(16, 2, max_concurrent=3) == 3 and concurrent(2, 4) == 1


def test_space_cost_scales_by_images_and_epochs_and_assumes_a_missing_module(pilot_dir, tmp_path):
    space = load_space(
        write_space(
            tmp_path / "s.yaml", {"attention": ["none", "se"], "seed": [0]}, {"epochs": 30}, base={"subset": 5000}
        )
    )
    pilot = load_pilot(pilot_dir)
    cost = space_cost(space, pilot, plan_pilot(pilot), cores=2)
    none, se = cost.rows
    assert none["budget"] == "subset=10000" and none["matched"] == "same images x epochs"
    # 5,000 images x 30 epochs = the 10,000 x 15 of the pilot: training time as measured, compilation once
    assert none["trial_time_s"] == pytest.approx(90 + 10)
    assert se["trial_time_s"] == pytest.approx(150 / 100 * (90 + 10))  # the pilot's dearest module (sca) x none
    assert "assumed 1.50" in se["cost"]
    given = space_cost(space, pilot, plan_pilot(pilot), cores=2, relative_cost={"se": 1.2})
    assert given.rows[1]["trial_time_s"] == pytest.approx(1.2 * 100)
    double = load_space(
        write_space(tmp_path / "d.yaml", {"attention": ["none"], "seed": [0]}, {}, base={"subset": 40000})
    )
    row = space_cost(double, pilot, plan_pilot(pilot), cores=2).rows[0]
    assert row["budget"] == "subset=20000" and row["matched"] == "scaled by images x epochs"
    assert row["trial_time_s"] == pytest.approx(190 * 2 + 10)


def test_space_cost_with_a_seed_budget(pilot_dir, tmp_path):
    space = load_space(
        write_space(
            tmp_path / "s.yaml",
            {"attention": ["none", "sca"]},
            {"seeds": {"min": 2, "max": 8, "alpha": 0.05}},
            base={"subset": 20000},
        )
    )
    pilot = load_pilot(pilot_dir)
    plan = plan_pilot(pilot, level=0.05)
    cost = space_cost(space, pilot, plan, cores=2)
    need = int(plan.budgets[1].budget["seeds_needed"])
    assert 2 <= need <= 8
    assert cost.trials == {"min": 4, "expected": 2 * need, "max": 16}
    assert cost.hours["min"] == pytest.approx(2 * (200 + 300) / 2 / 3600)
    assert cost.hours["max"] == pytest.approx(8 * (200 + 300) / 2 / 3600)
    assert cost.comparisons == 1


def test_unfinished_trials_are_counted_but_not_measured(tmp_path):
    rows = pilot_rows(BUDGETS)
    rows[-1].update(status="running", test_top1=None, compile_time_s=None)
    plan = plan_pilot(load_pilot(write_pilot(tmp_path / "p", rows, finished=False)))
    big = plan.budgets[1].budget
    assert (big["trials"], big["completed"], big["unfinished"]) == (4, 3, 1)
    sca = next(v for v in plan.budgets[1].variants if v["variant"] == "sca")
    assert sca["paired_seeds"] == 1 and math.isnan(sca["diff_sd"])
    assert math.isnan(plan.overhead)


def test_command_writes_plan_files(pilot_dir, tmp_path, capsys):
    space = write_space(tmp_path / "s.yaml", {"attention": ["none", "sca"], "seed": [0, 1]}, {})
    assert main(["plan", str(space), "--pilot", str(pilot_dir), "--out", str(tmp_path / "out"), "--cores", "2"]) == 0
    out = capsys.readouterr().out
    assert "Recommended budget: subset=20000" in out and "Wall-clock hours" in out
    frame = pd.read_csv(tmp_path / "out" / "plan.csv")
    assert set(frame["budget"]) == {"subset=10000", "subset=20000"} and frame["recommended"].any()
    title = (tmp_path / "out" / "plan.md").read_text().splitlines()[0]
    assert title == f"# Plan from the pilot {pilot_dir.name}"  # the folder, not this machine's path
    assert len(pd.read_csv(tmp_path / "out" / "cost.csv")) == 2


@pytest.mark.parametrize(
    "case, argv, fragments",
    [
        ("missing_dir", ["--pilot", "{tmp}/nowhere"], ["--pilot", "nowhere", "no such directory"]),
        ("no_results", ["--pilot", "{tmp}/empty"], ["--pilot", "no results.csv"]),
        ("unknown_baseline", ["--pilot", "{pilot}", "--baseline", "se"], ["--baseline 'se'", "allowed: none, sca"]),
        ("bad_effect", ["--pilot", "{pilot}", "--effect", "0"], ["--effect", "> 0"]),
        ("missing_space", ["{tmp}/nope.yaml", "--pilot", "{pilot}"], ["nope.yaml", "cannot read"]),
    ],
)
def test_bad_input_is_one_line_and_exit_2(case, argv, fragments, pilot_dir, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    argv = [a.format(tmp=tmp_path, pilot=pilot_dir) for a in argv]
    assert main(["plan", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("ablate plan: error:")
    for fragment in fragments:
        assert fragment in err


def test_a_budget_whose_baseline_has_not_finished_is_not_judged(tmp_path):
    from ablation.analysis.plan import summary_lines

    budgets = {**BUDGETS, 10000: {**BUDGETS[10000], "gain": 0.5}}
    rows = pilot_rows(budgets)
    for r in rows:  # budget 20000: one baseline seed done (flat), the other still running
        if r["subset"] == 20000 and (r["attention"] == "sca" or r["seed"] == 1):
            r.update(status="running" if r["attention"] == "none" else "pending", test_top1=None)
    plan = plan_pilot(load_pilot(write_pilot(tmp_path / "p", rows, finished=False)))
    assert [b.budget["flat"] for b in plan.budgets] == [False, None]
    assert plan.recommended is None
    line = summary_lines(plan)[0]
    assert "No budget is flat so far" in line and "not yet judged: subset=20000" in line


def test_a_module_measured_at_another_budget_is_costed_by_its_ratio_there(tmp_path):
    rows = pilot_rows(BUDGETS)
    for r in rows:
        if r["subset"] == 20000 and r["attention"] == "sca":
            r.update(status="running", test_top1=None)
    pilot = load_pilot(write_pilot(tmp_path / "p", rows, finished=False))
    space = load_space(
        write_space(tmp_path / "s.yaml", {"attention": ["none", "sca"], "seed": [0]}, {}, base={"subset": 20000})
    )
    none, sca = space_cost(space, pilot, plan_pilot(pilot), cores=2).rows
    assert none["trial_time_s"] == pytest.approx(200)
    assert sca["trial_time_s"] == pytest.approx(1.5 * 200)  # 150 / 100 at subset=10000
    assert "measured at subset=10000" in sca["cost"]
