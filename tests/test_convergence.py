"""Convergence: each completed trial's validation gain over its last epochs, whether it is flat,
the report's Convergence section and ``convergence.csv``, and ``ablate plan``'s flatness from
the same computation."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ablation.analysis import convergence as conv
from scipy import stats

from ablation.analysis.convergence import (
    ALPHA,
    FLAT,
    LAST,
    is_flat,
    last_gains,
    mean_gain_bound,
    trial_convergence,
    variant_flatness,
)
from ablation.analysis.report import convergence_sentence, convergence_table, variant_flatness_sentence, write_report
from ablation.run.epochs import epochs_table
from report_fixtures import study_rows, trial_row, write_epochs_for, write_run


def curve(epoch: int, end: int, gain: float) -> float:
    """Val top-1 that rises 5 points an epoch, then by ``gain`` over the last ``LAST`` epochs."""
    start = end - LAST
    return 60.0 + 5.0 * min(epoch, start) + gain * max(0, epoch - start) / LAST


def epochs_of(trials: dict[str, tuple[int, float]]) -> pd.DataFrame:
    """``epochs.csv`` of trials named by id: (epochs trained, gain over the last ``LAST``)."""
    return epochs_table(
        {"trial_id": t, "variant": "v", "backbone": "resnet20", "attention": "none", "seed": 0, "epoch": e, "top1": y}
        for t, (end, gain) in trials.items()
        for e in range(1, end + 1)
        for y in [curve(e, end, gain)]
    )


TRIALS = {"t000": (8, 0.9), "t001": (8, 0.05), "t002": (LAST, 0.0), "t003": (6, -0.4)}


def test_gain_over_the_last_epochs_and_flatness():
    epochs = epochs_of(TRIALS)
    gains = last_gains(epochs, TRIALS)
    for t, (end, _) in TRIALS.items():
        if end > LAST:
            top1 = epochs[epochs["trial_id"] == t].set_index("epoch")["top1"]
            assert gains[t] == pytest.approx(top1[end] - top1[end - LAST])
    assert gains["t000"] == pytest.approx(0.9) and is_flat(gains["t000"]) is False  # still rising
    assert gains["t001"] == pytest.approx(0.05) and is_flat(gains["t001"]) is True
    assert gains["t003"] == pytest.approx(-0.4) and is_flat(gains["t003"]) is True  # falling is not rising
    assert math.isnan(gains["t002"]) and is_flat(gains["t002"]) is None  # too short to judge
    assert is_flat(0.5, flat=1.0) is True and is_flat(FLAT) is False  # the threshold is strict
    assert math.isnan(last_gains(epochs, ["absent"])["absent"])


def test_every_completed_trial_gets_a_row():
    rows = [trial_row(i, seed=i) for i in range(4)] + [trial_row(4, status="running", seed=4)]
    epochs = epochs_of({**TRIALS, "t004": (8, 3.0)})
    table = trial_convergence(pd.DataFrame(rows), epochs)
    assert list(table["trial_id"]) == list(TRIALS)  # the running trial is not judged
    assert list(table["epochs"]) == [end for end, _ in TRIALS.values()]
    assert list(table["flat"]) == [False, True, None, True]
    assert list(table["seed"]) == [0, 1, 2, 3]


def trials_frame(gains: dict[tuple[str, int], float]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"trial_id": f"t{i}", "backbone": "resnet20", "variant": v, "seed": s, "epochs": 6, "gain": g}
            for i, ((v, s), g) in enumerate(gains.items())
        ]
    ).assign(flat=lambda f: [is_flat(g) for g in f["gain"]])


def test_sentence_and_table_follow_the_data():
    flat = trials_frame({("none", 0): 0.1, ("none", 1): -0.3, ("sca k=3", 0): 0.15})
    assert convergence_sentence(flat) == (
        f"Every seed's validation top-1 gained less than {FLAT:g} points over its last {LAST} epochs (flat)."
    )
    rising = trials_frame({("none", 0): 0.1, ("none", 1): 0.7, ("sca k=3", 0): 0.25, ("sca k=3", 1): 0.0})
    assert convergence_sentence(rising) == (
        f"2 of 4 seeds gained {FLAT:g} points or more over their last {LAST} epochs (still rising): "
        "resnet20 none (s1); resnet20 sca k=3 (s0)."
    )
    table = convergence_table(rising).set_index("variant")
    assert table.loc["none", "flat / seeds"] == "1 / 2"
    assert table.loc["none", f"val top-1 gain, last {LAST} epochs"] == "s0 +0.10, s1 +0.70"
    assert table.loc["none", "mean gain"] == "+0.40"
    short = trials_frame({("none", 0): 0.1, ("none", 1): math.nan})
    assert "1 of 2 seeds trained 3 epochs or fewer: not judged" in convergence_sentence(short)
    assert convergence_table(short).loc[0, f"val top-1 gain, last {LAST} epochs"] == "s0 +0.10, s1 -"
    assert "not judged" in convergence_sentence(trials_frame({("none", 0): math.nan}))


def test_a_variant_is_flat_when_its_mean_gain_is_shown_below_the_rule():
    # Each seed's gain at the size of the rule: per seed, 2 of 6 fail it by chance; on average the
    # variant is flat, as a one-sided t test of mean < FLAT says.
    noisy = [0.25, -0.1, 0.0, 0.22, -0.15, 0.05]
    n, mean, upper = mean_gain_bound(noisy)
    assert (n, mean) == (6, pytest.approx(sum(noisy) / 6))
    assert upper == pytest.approx(stats.t.interval(1 - 2 * ALPHA, 5, loc=mean, scale=stats.sem(noisy))[1])
    assert stats.ttest_1samp(noisy, FLAT, alternative="less").pvalue < ALPHA and upper < FLAT
    assert mean_gain_bound([0.25, -0.1, math.nan])[0] == 2  # a seed with no gain is left out
    assert math.isnan(mean_gain_bound([0.1])[2]) and mean_gain_bound([])[0] == 0

    gains = {("none", s): g for s, g in enumerate(noisy)}
    gains |= {("se", s): g for s, g in enumerate([0.05, 0.1, 0.45])}  # mean 0.2: not shown below it
    gains |= {("cbam", s): g for s, g in enumerate([0.05, 0.15])}  # flat per seed, too few to show it
    gains |= {("eca", 0): 0.0}  # one seed: not judged on average
    trials = trials_frame(gains)
    variants = variant_flatness(trials).set_index("variant")
    assert list(variants.index) == ["none", "se", "cbam", "eca"]
    assert variants["flat"].tolist() == [True, False, False, None]
    assert variants.loc["se", "upper"] > FLAT > variants.loc["cbam", "mean_gain"]
    sentence = variant_flatness_sentence(trials)
    assert ": 1 of 3 variants flat; not shown flat: resnet20 se (mean +0.20, bound " in sentence
    assert "resnet20 cbam (mean +0.10, bound " in sentence and "1 of 4 variants had fewer than 2 seeds" in sentence
    table = convergence_table(trials).set_index("variant")
    assert table["flat on average"].tolist() == ["yes", "no", "no", "-"]
    assert table.loc["none", "flat / seeds"] == "4 / 6"
    assert table.loc["none", "mean gain, 95% upper bound (t)"] == f"{upper:+.2f}"

    flat_only = trials_frame({("none", 0): 0.0, ("none", 1): 0.02, ("sca", 0): -0.1, ("sca", 1): -0.08})
    assert "every variant judged is flat; as an intersection-union test, the claim that all 2 are flat" in (
        variant_flatness_sentence(flat_only)
    )
    assert "none is judged on average" in variant_flatness_sentence(trials_frame({("none", 0): 0.0}))


def section(md: str) -> str:
    return md[md.index("## Convergence") : md.index("## All variants")]


@pytest.mark.slow
def test_report_section_and_data_file(tmp_path):
    rows = study_rows()
    run = write_run(tmp_path / "run", rows)
    md = (write_report(run, tmp_path / "none") / "report.md").read_text()
    assert "no epochs.csv), so convergence is not judged" in section(md)
    assert not (tmp_path / "none" / conv.CONVERGENCE_FILE).exists()

    epochs = write_epochs_for(run, rows, epochs=6)  # every curve rises 1 point an epoch to the end
    flat_end = epochs.assign(top1=[y - max(0, e - 3) + 0.05 * max(0, e - 3) for y, e in zip(epochs.top1, epochs.epoch)])
    rising = {r["trial_id"] for r in rows if r["backbone"] == "mobilenet_v2" and r["kernel_size"] == 7}
    mixed = pd.concat([flat_end[~flat_end["trial_id"].isin(rising)], epochs[epochs["trial_id"].isin(rising)]])

    flat_end.to_csv(run / "epochs.csv", index=False)
    out = write_report(run, tmp_path / "flat")
    md = (out / "report.md").read_text()
    assert md.index("## Training curves") < md.index("## Convergence") < md.index("## All variants")
    assert "Every seed's validation top-1 gained less than 0.2 points over its last 3 epochs (flat)." in section(md)
    assert "<h2>Convergence</h2>" in (out / "report.html").read_text()
    assert "convergence" in (out / "tables.tex").read_text()

    mixed.to_csv(run / "epochs.csv", index=False)
    out = write_report(run, tmp_path / "mixed")
    text = section((out / "report.md").read_text())
    assert f"{len(rising)} of {len(rows)} seeds gained 0.2 points or more" in text
    assert "(still rising): mobilenet_v2 sca k=7 (s0, s1, s2)." in text
    assert "| 0 / 3 " in text and "| 3 / 3 " in text
    assert "5 of 6 variants flat; not shown flat: mobilenet_v2 sca k=7 (mean +3.00, bound +3.00)." in text
    data = pd.read_csv(out / conv.CONVERGENCE_FILE)
    assert list(data.columns) == ["trial_id", "backbone", "variant", "seed", "epochs", "gain", "flat"]
    assert set(data.loc[~data["flat"], "trial_id"]) == rising
    assert set(data["variant"]) == {"none", "sca k=3", "sca k=5", "sca k=7"}  # as the other tables name them
    assert data["gain"].tolist() == pytest.approx(list(last_gains(mixed, data["trial_id"]).values()))


def test_plan_judges_its_baseline_by_the_same_gains(tmp_path):
    from ablation.analysis import plan as plan_module
    from ablation.analysis.plan import load_pilot, plan_pilot
    from test_plan import BUDGETS, pilot_rows, write_pilot

    assert (plan_module.FLAT, plan_module.LAST) == (conv.FLAT, conv.LAST)  # one rule, imported
    budgets = {**BUDGETS, 20000: {**BUDGETS[20000], "gain": 0.6}}
    pilot = load_pilot(write_pilot(tmp_path / "p", pilot_rows(budgets)))
    plan = plan_pilot(pilot)
    trials = trial_convergence(pilot.results, pilot.epochs).merge(pilot.results[["trial_id", "budget", "attention"]])
    for b in plan.budgets:
        base = trials[(trials["budget"] == b.budget["budget"]) & (trials["attention"] == "none")]
        assert b.budget["baseline_gains"] == pytest.approx(dict(zip(base["seed"], base["gain"])))
        assert b.budget["flat"] is all(base["flat"])
    assert [b.budget["flat"] for b in plan.budgets] == [True, False]
