"""The collapsed-trial rule, its flag in results.csv, and how reports show collapsed seeds."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from ablation.run.collapse import CHANCE_MARGIN, LOSS_FRACTION, is_collapsed
from ablation.analysis.report import write_report
from ablation.run.results import TrialRecord, row
from report_fixtures import study_rows, write_run


@pytest.mark.parametrize(
    "top1, loss, classes, expected",
    [
        (10.0, 2.3, 10, True),  # chance and a flat loss
        (10.0 + CHANCE_MARGIN, 1.0, 10, True),  # within the margin of chance
        (10.0 + CHANCE_MARGIN + 0.1, 1.0, 10, False),
        (90.0, LOSS_FRACTION * math.log(10), 10, True),  # the loss did not fall
        (90.0, 0.99 * LOSS_FRACTION * math.log(10), 10, False),
        (90.0, float("nan"), 10, True),  # diverged
        (55.1, 0.5, 2, False),
        (54.9, 0.5, 2, True),  # two classes: chance is 50%
        (None, 0.5, 10, False),
        (90.0, 0.5, None, False),  # not recorded: no flag
    ],
)
def test_rule(top1, loss, classes, expected):
    assert is_collapsed(top1, loss, classes) is expected


def _record(top1: float, train_loss: float, status: str = "completed") -> TrialRecord:
    config = {"backbone": "resnet20", "attention": "none", "dataset": "digits", "epochs": 2, "seed": 0}
    history = [{"epoch": e, "top1": top1, "train_loss": train_loss, "num_classes": 10} for e in (1, 2)]
    return TrialRecord("t1", config, status, history=history)


def test_results_rows_flag_completed_trials_only():
    assert row(_record(9.8, 2.30))["collapsed"] is True
    assert row(_record(97.0, 0.05))["collapsed"] is False
    assert row(_record(9.8, 2.30, status="stopped")).get("collapsed") is None


@pytest.mark.slow
def test_report_marks_lists_and_keeps_collapsed_seeds(tmp_path):
    rows = study_rows(collapse=[("mobilenet_v2", 7, 1)])
    out = write_report(write_run(tmp_path / "run", rows), tmp_path / "report")
    md = (out / "report.md").read_text()
    listed = md[md.index("## Collapsed trials") : md.index("## Failed trials")]
    assert "Rule: a trial is flagged collapsed" in listed
    collapsed = [r for r in rows if r["collapsed"]]
    assert len(collapsed) == 1 and collapsed[0]["trial_id"] in listed
    line = next(ln for ln in md.splitlines() if "| mobilenet_v2 " in ln and "k=7 †" in ln)
    assert "10.50†" in line and "1 of 3 collapsed" in line
    summary = pd.read_csv(out / "summary.csv").set_index("label")
    k7 = summary.loc["mobilenet_v2 sca k=7"]
    values = [r["test_top1"] for r in rows if r["backbone"] == "mobilenet_v2" and r["kernel_size"] == 7]
    assert k7["top1_mean"] == pytest.approx(sum(values) / 3)  # kept in the mean, not dropped
    assert k7["top1_median"] == pytest.approx(sorted(values)[1]) and k7["n_collapsed"] == 1
    assert summary.loc["resnet20 sca k=3", "n_collapsed"] == 0
    assert "$\\dagger$" in (out / "tables.tex").read_text()


@pytest.mark.slow
def test_no_collapsed_trial_says_none(tmp_path):
    out = write_report(write_run(tmp_path / "run", study_rows()), tmp_path / "report")
    md = (out / "report.md").read_text()
    assert md[md.index("## Collapsed trials") : md.index("## Failed trials")].rstrip().endswith("None.")
    assert "†" not in md.split("## Collapsed trials")[0].split("## How to read")[1].split("Collapsed trials:")[0]
