"""Reports from hand-made results tables: every file, failed trials, single seed, running sweeps,
the CLI, and the HTML opened in headless Chromium."""
import shutil
import subprocess

import pandas as pd
import pytest

from ablation.cli import main
from ablation.report import REPORT_FILES, write_report
from report_fixtures import trial_row, write_run

PLOTS = ("accuracy_vs_flops.png", "accuracy_vs_params.png", "factor_effects.png", "importance.png")


def kernel_rows(seeds=(0, 1, 2)) -> list[dict]:
    rows, i = [], 0
    for backbone, flops in (("resnet20", 40e6), ("mobilenet_v2", 8e6)):
        for seed in seeds:
            rows.append(trial_row(i, backbone=backbone, seed=seed, top1=88 + seed * 0.3, top5=99.0, val_loss=0.3,
                                  params=flops / 100, flops=flops, latency_ms=1.5, train_time_s=10.0,
                                  images_per_s=500.0))
            i += 1
            for k in (3, 5):
                rows.append(trial_row(i, backbone=backbone, seed=seed, attention="sca", kernel_size=k,
                                      top1=87 + k * 0.2 + seed * 0.3, top5=99.0, val_loss=0.35,
                                      params=flops / 100 + 21, flops=flops * 1.01, latency_ms=2.0,
                                      train_time_s=11.0, images_per_s=480.0))
                i += 1
    return rows


def test_report_writes_every_file_with_failed_trials(tmp_path):
    rows = kernel_rows()
    rows.append(trial_row(99, status="failed", attention="sca", kernel_size=7, error="NonFiniteLossError: epoch 2 step 5"))
    run = write_run(tmp_path / "runs" / "kernel", rows)
    out = write_report(run, tmp_path / "report")
    for name in (*REPORT_FILES, *PLOTS):
        assert (out / name).stat().st_size > 0, name
    md = (out / "report.md").read_text()
    assert "## Ablation: kernel_size" in md and "## Failed trials" in md
    assert "NonFiniteLossError: epoch 2 step 5" in md
    assert "Pareto front" in md and "fANOVA" in md
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(PLOTS) and "NonFiniteLossError" in html
    tex = (out / "tables.tex").read_text()
    assert "\\toprule" in tex and "\\midrule" in tex and "\\bottomrule" in tex and "kernel\\_size" in tex
    summary = pd.read_csv(out / "summary.csv")
    assert len(summary) == 6 and set(summary["n"]) == {3}
    assert not list(out.glob(".*.tmp"))  # atomic writes leave no temp files


def test_single_seed_still_reports(tmp_path):
    run = write_run(tmp_path / "one", kernel_rows(seeds=(0,)))
    out = write_report(run, tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "n/a (one seed)" in md
    assert len(pd.read_csv(out / "summary.csv")) == 6


def test_running_sweep_reports_what_finished(tmp_path):
    rows = kernel_rows(seeds=(0,))
    rows += [trial_row(50, status="running", attention="sca", kernel_size=7, top1=50.0, epochs_done=1),
             trial_row(51, status="pending", attention="sca", kernel_size=9)]
    out = write_report(write_run(tmp_path / "live", rows, finished=False), tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "still running: 2 trials have not finished" in md
    assert "k=7" not in md and "so far (the sweep has not finished)" in md


def test_no_completed_trial_gives_a_report_saying_so(tmp_path):
    rows = [trial_row(0, status="failed", error="RuntimeError: out of memory"), trial_row(1, status="running")]
    out = write_report(write_run(tmp_path / "empty", rows, finished=False), tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "No trial has completed yet" in md and "out of memory" in md


def test_cli_report_and_its_default_study(tmp_path, capsys):
    run = write_run(tmp_path / "runs" / "cli", kernel_rows())
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (tmp_path / "out" / "report.html").exists() and (run / "optuna.db").exists()


def test_cli_missing_run_dir_is_one_clear_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "results.csv" in err and "nowhere" in err and "Traceback" not in err


PROBE = ('<script>window.addEventListener("error",e=>document.body.setAttribute("data-"+"error",e.message));'
         'window.addEventListener("load",()=>{const ok=[...document.images].every(i=>i.complete&&i.naturalWidth>0);'
         'document.body.setAttribute("data-images",ok?"ok":"broken")});</script>')


@pytest.mark.skipif(shutil.which("chromium") is None, reason="headless Chromium (Debian package chromium) not installed")
def test_html_opens_in_headless_chromium(tmp_path):
    out = write_report(write_run(tmp_path / "html", kernel_rows()), tmp_path / "report")
    page = tmp_path / "probe.html"  # the report plus a probe that records load errors and image decoding
    page.write_text((out / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=5000",
         "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-images="ok"' in dom.stdout
    assert "data-error=" not in dom.stdout
    assert dom.stdout.count("<table") >= 3 and "Ablation report: handmade" in dom.stdout
