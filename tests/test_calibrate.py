"""Latency measured the same way for every variant: execution paths and the calibration pass."""

from __future__ import annotations

import shutil

import pandas as pd
import pytest

from ablation.attention.sca import SCA
from ablation.run.calibrate import LATENCY_FILE, calibrate, calibrate_run, summarize
from ablation.cli import main
from ablation.design.execution import EXECUTION_PATHS, prepare
from ablation.models import build_model
from ablation.analysis.report import write_report
from report_fixtures import study_rows, write_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_paths_set_every_sca_module_alike():
    model = build_model("resnet20", "sca", num_classes=10, small_input=True)
    scas = [m for m in model.modules() if isinstance(m, SCA)]
    assert scas and {m.fused for m in scas} == {False}  # default: PyTorch ops, like every peer
    prepare(model, "fused-sca")
    assert {m.fused for m in scas} == {True}
    prepare(model, "eager")
    assert {m.fused for m in scas} == {False}
    with pytest.raises(ValueError, match="allowed: eager, compiled, fused-sca"):
        prepare(model, "fast")
    assert EXECUTION_PATHS == ("eager", "compiled", "fused-sca")


def test_ratios_are_paired_per_round():
    """A slow round slows every model in it: the per-round ratio cancels it, the median keeps it out."""
    records = []
    for r, slow in enumerate([1.0, 1.0, 5.0, 1.0]):
        records += [
            {"round": r, "variant": "plain", "cpu_ms": 2.0 * slow, "wall_ms": 0.0},
            {"round": r, "variant": "a", "cpu_ms": 2.2 * slow + 0.01 * r, "wall_ms": 0.0},
        ]
    out = summarize(records, {"plain": "plain", "a": "plain"})
    assert out["plain"]["ratio"] == 1.0
    assert out["a"]["ratio"] == pytest.approx((1.102 + 1.105) / 2)  # median of 1.1, 1.105, 1.102, 1.115
    assert out["a"]["ratio_q25"] <= out["a"]["ratio"] <= out["a"]["ratio_q75"]
    assert out["a"]["ms"] == pytest.approx(statistics_median([2.2, 2.21, 11.02, 2.23]))


def statistics_median(values):
    import statistics

    return statistics.median(values)


def test_calibration_times_every_variant_against_its_plain_backbone(tmp_path):
    run = write_run(tmp_path / "run", study_rows(seeds=(0,)))
    table = calibrate(pd.read_csv(run / "results.csv"), {}, rounds=3, runs=1)
    results = pd.read_csv(run / "results.csv")
    assert set(table["variant"]) == set(results["variant"])
    assert (table["ms"] > 0).all() and (table["plain_ms"] > 0).all()
    assert (table["ratio_q25"] <= table["ratio"]).all() and (table["ratio"] <= table["ratio_q75"]).all()
    assert set(table["path"]) == {"eager"} and set(table["clock"]) == {"cpu"} and set(table["rounds"]) == {3}
    # each backbone's plain net is its own reference: the two 'none' variants share one per backbone
    plain = table.merge(results[["variant", "backbone", "attention"]], on="variant")
    assert plain.groupby("backbone")["plain_ms"].nunique().eq(1).all()
    assert plain.groupby("backbone")["plain_ms"].first().nunique() == 2


@pytest.mark.slow
def test_report_shows_calibrated_ratios_or_says_latency_is_per_trial(tmp_path):
    run = write_run(tmp_path / "run", study_rows(seeds=(0, 1)))
    md = (write_report(run, tmp_path / "before") / "report.md").read_text()
    assert "latency ms (per trial, noisy)" in md and "no calibration pass ran" in md
    assert main(["report", str(run), "--calibrate", "--rounds", "3", "--out", str(tmp_path / "after")]) == 0
    assert (run / LATENCY_FILE).is_file() and (tmp_path / "after" / LATENCY_FILE).is_file()
    md = (tmp_path / "after" / "report.md").read_text()
    assert "latency x plain [IQR], ms (eager)" in md and "one calibration pass after the trials" in md
    calibrated = pd.read_csv(run / LATENCY_FILE)
    summary = pd.read_csv(tmp_path / "after" / "summary.csv")
    merged = summary.merge(calibrated, on="variant")
    assert len(merged) == len(summary)
    pd.testing.assert_series_equal(merged["latency_ms"], merged["ms"], check_names=False)
    first = merged.iloc[0]
    assert f"x{first['ratio']:.3f} [{first['ratio_q25']:.3f}, {first['ratio_q75']:.3f}]" in md


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler for the fused SCA kernel")
@pytest.mark.slow
def test_fused_kernel_only_when_asked_and_labelled(tmp_path, monkeypatch):
    from ablation.attention import sca_kernel

    calls = []
    real = sca_kernel.forward
    monkeypatch.setattr(sca_kernel, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    kernel_reading = {"branches": "hwc", "gate": "sigmoid"}  # what the fused kernel computes
    run = write_run(
        tmp_path / "run", [r | (kernel_reading if r["attention"] == "sca" else {}) for r in study_rows(seeds=(0,))]
    )
    calibrate_run(run, rounds=3)
    assert not calls  # the default path never runs the fused kernel
    calibrate_run(run, rounds=3, path="fused-sca")
    assert calls
    md = (write_report(run, tmp_path / "report") / "report.md").read_text()
    assert "ms (fused-sca)" in md and "hand-fused C kernel (the peers have none)" in md
    rows = [line for line in md.splitlines() if line.startswith("| resnet20 ") and "ms" in line]
    assert all(("(fused kernel)" in line) == (" sca " in line) for line in rows) and any(
        " sca " in line for line in rows
    )


@pytest.mark.slow
def test_compiled_path_for_every_variant(tmp_path):
    rows = [r for r in study_rows(seeds=(0,)) if r["backbone"] == "resnet20" and r["kernel_size"] in (None, 3)]
    run = write_run(tmp_path / "run", rows)
    path = calibrate_run(run, rounds=3, path="compiled")
    table = pd.read_csv(path)
    assert len(table) == 2 and set(table["path"]) == {"compiled"} and (table["ms"] > 0).all()


def test_calibration_of_a_run_without_data_shapes_is_one_clear_error(tmp_path, capsys):
    rows = study_rows(seeds=(0,))
    for r in rows:
        r.pop("num_classes")
    run = write_run(tmp_path / "run", rows)
    assert main(["report", str(run), "--calibrate"]) == 2
    err = capsys.readouterr().err
    assert "num_classes" in err and "re-run the sweep" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as stop:
        main(["report", str(run), "--calibrate", "--path", "fast"])
    assert stop.value.code == 2 and "invalid choice: 'fast'" in capsys.readouterr().err
