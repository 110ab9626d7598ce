"""A run against an earlier run of the same variants and seeds with a setting changed
(``ablate report RUN --against EARLIER``, ``ablation.analysis.setting_change``)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from ablation.analysis.report import write_report
from ablation.analysis.setting_change import (
    AGAINST_FILES,
    CHANGE_FILE,
    change_table,
    changed_settings,
    keep_against,
    setting_change,
)
from ablation.cli import main
from report_fixtures import HARDWARE, trial_row, write_epochs_for, write_run

SEEDS = (0, 1, 2, 3)


def rows(
    epochs: int, shift: dict[str, float], seeds=SEEDS, attentions=("none", "se", "cbam"), backbone="resnet20"
) -> list[dict]:
    """``backbone`` with each module in ``attentions`` for ``seeds``, trained ``epochs`` epochs;
    test top-1 is a seed effect plus ``shift[attention]`` plus small seeded noise."""
    rng = np.random.default_rng(epochs)
    out = []
    for attention in attentions:
        for seed in seeds:
            top1 = 90 + 0.5 * seed + shift.get(attention, 0.0) + rng.normal(0, 0.05)
            out.append(
                trial_row(
                    len(out),
                    backbone=backbone,
                    attention=attention,
                    seed=seed,
                    epochs=epochs,
                    epochs_done=epochs,
                    top1=top1 + 0.3,
                    train_loss=0.2,
                    test_top1=top1,
                    val_split=0.1,
                    train_path="fast",
                    latency_path="eager",
                    params=1e5,
                    flops=1e7,
                    latency_ms=1.0,
                    num_classes=10,
                    train_images=10000,
                    **HARDWARE,
                )
            )
    return out


def run_with(path, epochs, shift, slope, name, **kwargs):
    """A run directory with results, and curves whose last three epochs gain 3 x ``slope``."""
    table = rows(epochs, shift, **kwargs)
    write_run(path, table, name=name)
    write_epochs_for(path, table, epochs, rise=slope)
    return path


@pytest.fixture
def two_runs(tmp_path):
    """20 epochs with CBAM 0.8 below none and still rising; 30 epochs, flat, with every variant
    0.5 higher and CBAM caught up with none."""
    earlier = run_with(tmp_path / "short", 20, {"cbam": -0.8}, slope=0.2, name="short")
    later = run_with(tmp_path / "long", 30, {}, slope=0.01, name="long", seeds=(0, 1, 2, 3, 4))
    results = pd.read_csv(later / "results.csv")
    results["test_top1"] += 0.5
    results.to_csv(later / "results.csv", index=False)
    return earlier, later


def test_changed_settings_are_single_valued_in_both_and_differ():
    before, now = pd.DataFrame(rows(20, {})), pd.DataFrame(rows(30, {}, attentions=("none", "se")))
    spaces = ({"base": {"lr": 0.1, "batch_size": 128}}, {"base": {"lr": 0.05, "batch_size": 128}})
    changed = changed_settings(before, now, *spaces)
    assert changed == {"epochs": ("20", "30"), "lr": ("0.1", "0.05")}  # not attention: it is the variant


def test_pairs_are_the_same_variant_and_seed_and_the_order_test_finds_what_moved(two_runs):
    earlier, later = two_runs
    keep_against(later, earlier)
    change = setting_change(later, pd.read_csv(later / "results.csv"))
    assert change.changed == {"epochs": ("20", "30")}
    assert len(change.pairs) == 3 * len(SEEDS)  # seed 4 ran only in the later run
    assert set(change.pairs["seed"]) == set(SEEDS)
    tests = change.tests.set_index(["kind", "cell"])
    assert tests.loc[("change", "resnet20 none"), "decided"]  # +0.5 on every seed
    assert tests.loc[("change", "resnet20 none"), "mean"] == pytest.approx(0.5, abs=0.1)
    assert tests.loc[("change", "resnet20 cbam"), "mean"] == pytest.approx(1.3, abs=0.1)
    assert tests.loc[("change", "all variants (pooled)"), "pairs"] == 3 * len(SEEDS)
    assert tests.loc[("order", "resnet20 cbam"), "decided"]  # CBAM caught up with none: +0.8
    assert tests.loc[("order", "resnet20 cbam"), "mean"] == pytest.approx(0.8, abs=0.1)
    assert not tests.loc[("order", "resnet20 se"), "decided"]  # SE moved with none
    assert ("order", "resnet20 none") not in tests.index  # the baseline has no order test
    assert set(change.pairs["flat_earlier"]) == {False} and set(change.pairs["flat_now"]) == {True}
    table = change_table(change)
    cbam = table[(table["comparison"] == "change") & (table["variant"] == "resnet20 cbam")].iloc[0]
    assert cbam["flat earlier"] == "0/4" and cbam["flat now"] == "4/4"
    assert cbam["per seed (earlier → now)"].count("→") == len(SEEDS)


def test_each_variant_is_judged_against_the_baseline_of_its_own_setting(tmp_path):
    def both(epochs, wide_cbam):
        table = []
        for width, cbam in ((0.5, -0.8), (1.0, wide_cbam)):
            for row in rows(epochs, {"cbam": cbam}, attentions=("none", "cbam"), backbone="mobilenet_v2"):
                table.append({**row, "width_mult": width, "trial_id": f"t{len(table):03d}"})
        return table

    earlier, later = tmp_path / "short", tmp_path / "long"
    write_run(earlier, both(20, -0.8), name="short")
    write_run(later, both(30, 0.0), name="long")  # CBAM catches up with none at width 1.0 only
    keep_against(later, earlier)
    tests = setting_change(later, pd.read_csv(later / "results.csv")).tests
    order = tests[tests["kind"] == "order"].set_index("cell")
    wide, narrow = [c for c in order.index if "1" in c.split()[1]], [c for c in order.index if "0.5" in c]
    assert len(wide) == 1 and len(narrow) == 1 and len(order) == 2
    assert order.loc[wide[0], "decided"] and order.loc[wide[0], "mean"] == pytest.approx(0.8, abs=0.1)
    assert not order.loc[narrow[0], "decided"] and order.loc[narrow[0], "pairs"] == len(SEEDS)


def test_holm_over_the_section_widens_every_interval(two_runs):
    earlier, later = two_runs
    keep_against(later, earlier)
    results = pd.read_csv(later / "results.csv")
    family = setting_change(later, results).tests
    alone = setting_change(later, results, family="comparison").tests
    assert (family["level"] <= alone["level"]).all() and (family["level"] < alone["level"]).any()
    assert ((family["high"] - family["low"]) >= (alone["high"] - alone["low"]) - 1e-12).all()


def test_no_comparison_without_an_earlier_run_or_common_seeds(tmp_path, two_runs):
    earlier, later = two_runs
    assert setting_change(later, pd.read_csv(later / "results.csv")) is None
    other = run_with(tmp_path / "other", 20, {}, slope=0.2, name="other", seeds=(7, 8))
    keep_against(later, other)
    assert setting_change(later, pd.read_csv(later / "results.csv")) is None


def test_report_against_an_earlier_run_regenerates_from_its_folder(two_runs, tmp_path):
    earlier, later = two_runs
    assert main(["report", str(later), "--against", str(earlier), "--out", str(tmp_path / "report")]) == 0
    out = tmp_path / "report"
    text = (out / "report.md").read_text()
    assert "## Against short" in text and "epochs 20 → 30" in text
    assert CHANGE_FILE in text and "against/results.csv" in text  # named under Files
    assert len(pd.read_csv(out / CHANGE_FILE)) == 3 * len(SEEDS)
    assert all((later / f).is_file() and (out / f).is_file() for f in AGAINST_FILES)
    assert json.loads((out / "against" / "sweep.json").read_text())["name"] == "short"
    # the report folder alone regenerates it, without --against
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    assert main(["report", str(copy), "--out", str(tmp_path / "again")]) == 0
    again = (tmp_path / "again" / "report.md").read_text()
    section = text[text.index("## Against short") :].split("\n## ")[0]
    assert section in again


def test_against_a_folder_without_results_is_one_line_and_exit_2(two_runs, tmp_path, capsys):
    _, later = two_runs
    assert main(["report", str(later), "--against", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nowhere/results.csv" in err[0] and "--against" in err[0]
    assert not (later / "against").exists() and not (later / "report.md").exists()


def test_a_report_without_an_earlier_run_has_no_section(two_runs, tmp_path):
    _, later = two_runs
    text = (write_report(later, tmp_path / "plain") / "report.md").read_text()
    assert "## Against" not in text and CHANGE_FILE not in text
