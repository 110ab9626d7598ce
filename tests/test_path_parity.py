"""A parity study's training paths compared pair by pair (``ablation.analysis.path_parity``) and
shown in its report."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ablation.analysis.path_parity import PARITY_FILE, parity_table, path_parity
from ablation.analysis.report import write_report
from report_fixtures import HARDWARE, trial_row, write_run

SEEDS = (0, 1, 2, 3)


def parity_rows(shift: dict[str, float], seeds=SEEDS, noise: float = 0.3, collapse: tuple = ()) -> list[dict]:
    """resnet20 and mobilenet_v2 with none and SCA, each seed on eager and on fast; the fast trial
    is the eager one plus ``shift[backbone]`` plus seeded noise. ``collapse``: (backbone,
    attention, seed) whose fast trial collapsed."""
    rng = np.random.default_rng(7)
    rows, i = [], 0
    for backbone in ("resnet20", "mobilenet_v2"):
        for attention in ("none", "sca"):
            for seed in seeds:
                eager = 85 + seed * 0.7 + (0.4 if attention == "sca" else 0.0)
                fast = eager + shift[backbone] + rng.normal(0, noise)
                for path, top1 in (("eager", eager), ("fast", fast)):
                    collapsed = path == "fast" and (backbone, attention, seed) in collapse
                    rows.append(
                        trial_row(
                            i,
                            backbone=backbone,
                            attention=attention,
                            seed=seed,
                            train_path=path,
                            top1=top1 + 0.5,
                            test_top1=10.0 if collapsed else top1,
                            collapsed=collapsed,
                            val_split=0.1,
                            latency_path="eager",
                            params=1e5,
                            flops=1e7,
                            latency_ms=1.0,
                            num_classes=10,
                            **HARDWARE,
                        )
                    )
                    i += 1
    return rows


def test_a_consistent_shift_is_decided_and_none_is_not():
    results = pd.DataFrame(parity_rows({"resnet20": 0.0, "mobilenet_v2": -3.0}))
    parity = path_parity(results)
    assert parity is not None and parity.reference == "eager" and parity.metric == "test_top1"
    assert len(parity.pairs) == 2 * 2 * len(SEEDS)  # every (backbone, module, seed) paired once
    pooled = parity.pooled.set_index("backbone")
    assert bool(pooled.loc["mobilenet_v2", "decided"]) and not bool(pooled.loc["resnet20", "decided"])
    for backbone in ("resnet20", "mobilenet_v2"):
        row = pooled.loc[backbone]
        diffs = parity.pairs.loc[parity.pairs["backbone"] == backbone, "difference"]
        assert row["pairs"] == len(diffs) and row["mean"] == pytest.approx(diffs.mean())
        assert row["low"] < row["mean"] < row["high"]
    assert pooled.loc["mobilenet_v2", "high"] < 0  # the interval excludes 0 where it is decided
    assert pooled.loc["resnet20", "low"] < 0 < pooled.loc["resnet20", "high"]
    assert pooled.loc["resnet20", "mde"] > 0
    cells = parity.cells
    assert set(cells["cell"]) == {"none", "sca"} and len(cells) == 4
    assert set(cells.loc[cells["decided"], "backbone"]) <= {"mobilenet_v2"}
    sentence = parity.sentence()
    assert "mobilenet_v2, fast minus eager is" in sentence and "(fast differs)" in sentence
    assert "resnet20, fast minus eager is" in sentence and "not decided: no difference of" in sentence


def test_holm_over_cells_is_stricter_than_each_alone():
    results = pd.DataFrame(parity_rows({"resnet20": 0.0, "mobilenet_v2": -0.6}, noise=0.4))
    study, alone = path_parity(results), path_parity(results, family="comparison")
    assert (study.cells["level"] <= alone.cells["level"]).all()
    assert (study.cells["high"] - study.cells["low"] >= alone.cells["high"] - alone.cells["low"] - 1e-12).all()
    assert "Holm, familywise alpha 0.05" in study.sentence() and "each at alpha 0.05" in alone.sentence()


def test_only_seeds_run_on_both_paths_are_paired():
    rows = [
        r
        for r in parity_rows({"resnet20": 0.0, "mobilenet_v2": 0.0})
        if not (r["seed"] == 3 and r["train_path"] == "fast")
    ]
    rows += [dict(rows[0], trial_id="t999", seed=9, status="pending", test_top1=None)]  # unfinished: not counted
    parity = path_parity(pd.DataFrame(rows))
    assert sorted(parity.pairs["seed"].unique()) == [0, 1, 2]
    assert (parity.cells["pairs"] == 3).all()


def test_no_parity_without_two_paths():
    one_path = [r for r in parity_rows({"resnet20": 0.0, "mobilenet_v2": 0.0}) if r["train_path"] == "eager"]
    assert path_parity(pd.DataFrame(one_path)) is None
    no_column = pd.DataFrame(one_path).drop(columns=["train_path"])
    assert path_parity(no_column) is None


def test_the_table_names_every_pair_and_marks_a_collapse():
    rows = parity_rows({"resnet20": 0.0, "mobilenet_v2": 0.0}, collapse=(("resnet20", "sca", 1),))
    table = parity_table(path_parity(pd.DataFrame(rows)))
    cell = table[(table["backbone"] == "resnet20") & (table["cell"] == "sca")].iloc[0]
    pairs = cell["per seed (eager → fast)"]
    assert pairs.count("→") == len(SEEDS) and "→ 10.00†" in pairs
    pooled = table[table["cell"] == "all cells (pooled)"]
    assert list(pooled["pairs"]) == [2 * len(SEEDS)] * 2
    assert not math.isnan(float(cell["Δ vs eager"]))


def test_report_of_a_parity_study_has_the_paths_section(tmp_path):
    run = write_run(tmp_path / "run", parity_rows({"resnet20": 0.0, "mobilenet_v2": -3.0}), name="parity")
    out = write_report(run, tmp_path / "report")
    text = (out / "report.md").read_text()
    assert "## Training paths" in text and "fast minus eager" in text
    pairs = pd.read_csv(out / PARITY_FILE)
    assert len(pairs) == 16 and set(pairs["path"]) == {"fast"}
    assert PARITY_FILE in text  # named under Files
    assert "Training paths" in (out / "report.html").read_text()
