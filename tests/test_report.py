"""Reports from hand-made results tables: every file, failed trials, single seed, running sweeps,
the CLI, and the HTML opened in headless Chromium."""

import json
import shutil
import subprocess

import pandas as pd
import pytest

from ablation.cli import main
from ablation.analysis.report import BUDGET_CAVEAT, REPORT_FILES, write_report
from report_fixtures import trial_row, write_run

PLOTS = ("accuracy_vs_flops.png", "accuracy_vs_params.png", "factor_effects.png", "importance.png")


def kernel_rows(seeds=(0, 1, 2)) -> list[dict]:
    rows, i = [], 0
    for backbone, flops in (("resnet20", 40e6), ("mobilenet_v2", 8e6)):
        for seed in seeds:
            rows.append(
                trial_row(
                    i,
                    backbone=backbone,
                    seed=seed,
                    top1=88 + seed * 0.3,
                    top5=99.0,
                    val_loss=0.3,
                    params=flops / 100,
                    flops=flops,
                    latency_ms=1.5,
                    train_time_s=10.0,
                    images_per_s=500.0,
                )
            )
            i += 1
            for k in (3, 5):
                rows.append(
                    trial_row(
                        i,
                        backbone=backbone,
                        seed=seed,
                        attention="sca",
                        kernel_size=k,
                        top1=87 + k * 0.2 + seed * 0.3,
                        top5=99.0,
                        val_loss=0.35,
                        params=flops / 100 + 21,
                        flops=flops * 1.01,
                        latency_ms=2.0,
                        train_time_s=11.0,
                        images_per_s=480.0,
                    )
                )
                i += 1
    return rows


def test_report_writes_every_file_with_failed_trials(tmp_path):
    rows = kernel_rows()
    rows.append(
        trial_row(99, status="failed", attention="sca", kernel_size=7, error="NonFiniteLossError: epoch 2 step 5")
    )
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
    rows += [
        trial_row(50, status="running", attention="sca", kernel_size=7, top1=50.0, epochs_done=1),
        trial_row(51, status="pending", attention="sca", kernel_size=9),
    ]
    out = write_report(write_run(tmp_path / "live", rows, finished=False), tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "still running: 2 trials have not finished" in md
    assert "k=7" not in md and "so far (the sweep has not finished)" in md


def test_no_completed_trial_gives_a_report_saying_so(tmp_path):
    rows = [trial_row(0, status="failed", error="RuntimeError: out of memory"), trial_row(1, status="running")]
    out = write_report(write_run(tmp_path / "empty", rows, finished=False), tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "No trial has completed yet" in md and "out of memory" in md


@pytest.mark.slow
def test_cli_report_and_its_default_study(tmp_path, capsys):
    run = write_run(tmp_path / "runs" / "cli", kernel_rows())
    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (tmp_path / "out" / "report.html").exists() and (run / "optuna.db").exists()


def test_cli_missing_run_dir_is_one_clear_line(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert "results.csv" in err and "nowhere" in err and "Traceback" not in err


PROBE = (
    '<script>window.addEventListener("error",e=>document.body.setAttribute("data-"+"error",e.message));'
    'window.addEventListener("load",()=>{const ok=[...document.images].every(i=>i.complete&&i.naturalWidth>0);'
    'document.body.setAttribute("data-images",ok?"ok":"broken")});</script>'
)


@pytest.mark.skipif(
    shutil.which("chromium") is None, reason="headless Chromium (Debian package chromium) not installed"
)
@pytest.mark.slow
def test_html_opens_in_headless_chromium(tmp_path):
    out = write_report(write_run(tmp_path / "html", kernel_rows()), tmp_path / "report")
    page = tmp_path / "probe.html"  # the report plus a probe that records load errors and image decoding
    page.write_text((out / "report.html").read_text().replace("</body>", PROBE + "</body>"))
    dom = subprocess.run(
        [
            "chromium",
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=5000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert 'data-images="ok"' in dom.stdout
    assert "data-error=" not in dom.stdout
    assert dom.stdout.count("<table") >= 3 and "Ablation report: handmade" in dom.stdout


@pytest.mark.slow
def test_report_says_which_split_every_accuracy_comes_from(tmp_path):
    from report_fixtures import study_rows

    rows = study_rows()
    md = (write_report(write_run(tmp_path / "run", rows), tmp_path / "report") / "report.md").read_text()
    assert "| val top-1 % " in md and "| test top-1 % " in md
    assert "validation split of 10% of the training images" in md and "Selection never sees it" in md
    best = md[md.index("## Summary") : md.index("## Accuracy against cost")]
    assert "by val top-1; test top-1 % shown" in best
    paper = [dict(r, val_split=0.0) for r in rows]
    md = (write_report(write_run(tmp_path / "paper", paper), tmp_path / "paper_report") / "report.md").read_text()
    assert "also selected on (val_split: 0" in md and "| val top-1 % " not in md
    legacy = (
        write_report(write_run(tmp_path / "old", kernel_rows()), tmp_path / "old_report") / "report.md"
    ).read_text()
    assert "made before the harness kept a validation split apart" in legacy


@pytest.mark.slow
def test_best_is_chosen_on_validation_not_on_test(tmp_path):
    from report_fixtures import study_rows

    rows = [r for r in study_rows() if r["backbone"] == "resnet20"]
    for r in rows:  # k=3 looks best on test, k=5 on validation (k=3 its runner-up there)
        if r["kernel_size"] == 3:
            r["test_top1"] += 5
            r["top1"] += 0.3
    md = (write_report(write_run(tmp_path / "run", rows), tmp_path / "report") / "report.md").read_text()
    # chosen on validation; named best only if the test split confirms its lead, which it contradicts here
    assert "no best on resnet20 (by val top-1; test top-1 % shown): sca k=5" in md
    assert "leads sca k=3, but on test top-1 % the difference, -4.60 (against the selection's order)" in md


@pytest.mark.slow
def test_training_curves_section_from_epochs_csv(tmp_path):
    from report_fixtures import study_rows, write_epochs_for

    rows = study_rows()
    run = write_run(tmp_path / "run", rows)
    md = (write_report(run, tmp_path / "before") / "report.md").read_text()
    assert "## Training curves" in md and "no epochs.csv" in md
    write_epochs_for(run, rows)
    out = write_report(run, tmp_path / "report")
    md, html = (out / "report.md").read_text(), (out / "report.html").read_text()
    assert "## Training curves" in md and "![Val top-1 and training loss by epoch" in md
    assert "<h2>Training curves</h2>" in html and (out / "training_curves.png").stat().st_size > 0
    assert md.index("## Training curves") < md.index("## All variants")
    assert BUDGET_CAVEAT not in md  # seeds were a grid: the intervals are what they say


@pytest.mark.slow
def test_report_folder_carries_its_data_and_regenerates_from_it(tmp_path):
    from report_fixtures import study_rows, write_epochs_for

    rows = study_rows()
    run = write_run(tmp_path / "runs" / "study", rows)
    write_epochs_for(run, rows)
    out = write_report(run, tmp_path / "reports" / "study")
    for name in ("results.csv", "epochs.csv", "sweep.json"):
        assert (out / name).read_bytes() == (run / name).read_bytes(), name
    first = (out / "summary.csv").read_text()
    shutil.rmtree(tmp_path / "runs")  # the repository alone: the report folder is its own run directory
    assert main(["report", str(out), "--out", str(out)]) == 0
    assert (out / "summary.csv").read_text() == first
    assert "## Training curves" in (out / "report.md").read_text()
    assert "## Training paths" not in (out / "report.md").read_text()  # one path: no parity section
    assert not (out / "path_parity.csv").exists()


@pytest.mark.slow
def test_hardware_is_listed_and_a_mix_is_warned_about(tmp_path, monkeypatch):
    from report_fixtures import SAME_MACHINE, study_rows

    monkeypatch.setattr("ablation.analysis.report.fingerprint_here", lambda: dict(SAME_MACHINE))
    rows = study_rows()
    md = (write_report(write_run(tmp_path / "same", rows), tmp_path / "r1") / "report.md").read_text()
    hardware = md[md.index("### Hardware") :]
    assert "Test CPU 3000" in hardware and "| 18 " in hardware and "Warning" not in md
    for value in ("AVX2", "fma avx2", "2024.2 build 20240605", "3.12.0"):  # what decides the CPU numerics
        assert f"| {value} " in hardware, value
    assert "has the trials' cpu_model, cpu_capability, cpu_isa, mkl_version, onednn_version, torch_version" in hardware
    assert "Written on other hardware" not in md and "not recorded" not in hardware
    mixed = [dict(r, cpu_model="Other CPU 9", host="box2", ray_node="abc123") if r["seed"] == 2 else r for r in rows]
    md = (write_report(write_run(tmp_path / "mixed", mixed), tmp_path / "r2") / "report.md").read_text()
    hardware = md[md.index("### Hardware") :]
    assert "Other CPU 9" in hardware and "Test CPU 3000" in hardware
    assert "Warning: the trials of this study ran on different hardware or software (they differ in cpu_model)" in md


@pytest.mark.slow
def test_a_report_written_on_other_hardware_says_so(tmp_path, monkeypatch):
    """The trials' machine fingerprint against the one writing the report: one that differs only in
    torch's CPU capability and the CPU's instruction sets (same model name, as two AMD EPYC can)."""
    from report_fixtures import SAME_MACHINE, study_rows

    other = dict(SAME_MACHINE, cpu_capability="AVX512", cpu_isa="fma avx2 avx512f avx512_bf16")
    monkeypatch.setattr("ablation.analysis.report.fingerprint_here", lambda: dict(other))
    md = (write_report(write_run(tmp_path / "run", study_rows()), tmp_path / "r") / "report.md").read_text()
    hardware = md[md.index("### Hardware") :]
    assert "Written on other hardware" in hardware
    assert "cpu_capability (trials: AVX2; here: AVX512)" in hardware
    assert "cpu_isa (trials: fma avx2; here: fma avx2 avx512f avx512_bf16)" in hardware
    assert "cpu_model (" not in hardware  # the model name is the same: not named as a difference


@pytest.mark.slow
def test_an_old_run_without_the_cpu_fingerprint_still_reports(tmp_path, monkeypatch):
    """results.csv of a run made before the fingerprint was recorded (as the shipped reports'):
    the report regenerates and says what was not recorded."""
    from ablation.provenance import CPU_NUMERICS_KEYS
    from report_fixtures import SAME_MACHINE, study_rows

    monkeypatch.setattr("ablation.analysis.report.fingerprint_here", lambda: dict(SAME_MACHINE))
    rows = [{k: v for k, v in r.items() if k not in CPU_NUMERICS_KEYS} for r in study_rows()]
    run = write_run(tmp_path / "old", rows)
    assert not set(CPU_NUMERICS_KEYS) & set(pd.read_csv(run / "results.csv").columns)
    assert main(["report", str(run), "--out", str(tmp_path / "r")]) == 0
    hardware = (tmp_path / "r" / "report.md").read_text().split("### Hardware")[1]
    assert hardware.count("| not recorded ") == len(CPU_NUMERICS_KEYS)
    assert "did not record cpu_capability, cpu_isa, mkl_version, onednn_version" in hardware
    assert "cannot be told from cpu_model, torch_version alone" in hardware


@pytest.mark.slow
def test_report_text_names_no_absolute_path_of_the_machine(tmp_path):
    """Every file is named relative to the report: the Optuna study travels with it (or is rebuilt
    from results.csv), also when the study is in a SQLite file of one's own."""
    from report_fixtures import study_rows, write_epochs_for

    rows = study_rows(collapse=(("resnet20", 3, 1),))
    rows[0]["uncounted_ops"] = "aten::pow x9"
    run = write_run(tmp_path / "runs" / "study", rows)
    write_epochs_for(run, rows)
    out = tmp_path / "reports" / "study"
    assert main(["report", str(run), "--out", str(out)]) == 0
    own = tmp_path / "elsewhere" / "mine.db"
    own.parent.mkdir()
    assert main(["report", str(run), "--out", str(tmp_path / "own"), "--storage", f"sqlite:///{own}"]) == 0
    for folder in (out, tmp_path / "own"):
        for name in ("report.md", "report.html", "tables.tex"):
            text = (folder / name).read_text()
            assert str(tmp_path) not in text and "/work/" not in text and "/tmp/" not in text, (folder, name)
    assert "`optuna-dashboard sqlite:///optuna.db` from this folder" in (out / "report.md").read_text()
    assert "sqlite:///../elsewhere/mine.db" in (tmp_path / "own" / "report.md").read_text()
    import optuna

    study = optuna.load_study(study_name="handmade", storage=f"sqlite:///{out / 'optuna.db'}")  # it travelled
    assert len(study.trials) == len(pd.read_csv(out / "summary.csv"))


@pytest.mark.slow
def test_collapsed_and_uncounted_tables_name_the_variant_as_the_other_tables_do(tmp_path):
    """Two variants of a user's module that differ only in its own option (``mode``, a column no
    shipped module has) are told apart by their label, not by SCA's columns."""
    from report_fixtures import study_rows

    rows = []
    for r in study_rows(seeds=(0, 1)):
        if r["attention"] == "sca":
            mode = "l1" if r["kernel_size"] in (3, 7) else "l2"
            r = dict(
                r,
                attention="mygct:GCT",
                kernel_size=None,
                mode=mode,
                collapsed=r["seed"] == 1,
                test_top1=10.0,
                uncounted_ops="aten::norm x2",
            )
            r["variant"] = f"{r['backbone']}|gct|{mode}"
        rows.append(dict(r, mode=r.get("mode")))
    md = (write_report(write_run(tmp_path / "run", rows), tmp_path / "r") / "report.md").read_text()
    for section in ("## Collapsed trials", "## FLOPs not counted"):
        block = md.split(section)[1].split("\n## ")[0]
        assert "| mygct:GCT mode=l1 " in block and "| mygct:GCT mode=l2 " in block, section
    assert "| mygct:GCT mode=l1 " in md.split("## All variants")[1]  # the label the variants table uses


@pytest.mark.slow
def test_summary_and_delta_table_follow_the_familywise_decisions(tmp_path):
    """k=5 is 3 points above none in every seed (decided), k=3 scatters around it (not decided,
    so the summary gives the difference it could have seen: its MDE from the Δ table); the Δ
    table names the family and method; ``statistics: {family: comparison}`` in the space turns
    the familywise control off and the report says so."""
    from report_fixtures import study_rows

    rows = [r for r in study_rows() if r["backbone"] == "resnet20"]
    for r in rows:
        if r["kernel_size"] == 5:
            r["test_top1"] += 3.0
        if r["kernel_size"] == 3:
            r["test_top1"] += (1.2, -1.5, 0.6)[r["seed"]]
    run = write_run(tmp_path / "run", rows)
    md = (write_report(run, tmp_path / "report") / "report.md").read_text()
    summary = md[md.index("## Summary") : md.index("## Accuracy against cost")]
    delta = md[md.index("## Difference to no attention") : md.index("## Factor importance")]
    assert "Familywise error over the study's 2 comparisons at alpha = 0.05 by Holm's step-down" in delta
    k3 = next(line for line in delta.splitlines() if line.startswith("| resnet20 sca k=3"))
    cells = [c.strip() for c in k3.strip("|").split("|")]
    assert cells[8] == "no" and float(cells[9]) > 0
    assert "decided better: resnet20 sca k=5 than resnet20 none (+3.20" in summary
    assert (
        f"not decided: resnet20 sca k=3 against resnet20 none ({cells[2]}): no difference of {cells[9]} points or more detected"
        in summary
    )
    assert "decided worse" not in summary
    info = json.loads((run / "sweep.json").read_text())
    (run / "sweep.json").write_text(json.dumps({**info, "space": {"statistics": {"family": "comparison"}}}))
    md = (write_report(run, tmp_path / "loose") / "report.md").read_text()
    assert "each of the 2 comparisons at alpha = 0.05 on its own (no familywise control" in md


@pytest.mark.slow
def test_seed_budget_summary_follows_its_decisions(tmp_path):
    """A seed budget: SE 5 points below none in every seed is decided worse; ECA scatters around
    none and stays undecided at max seeds, so the summary gives what it could have seen (its MDE
    from the 'Seeds until decided' table); none leads on validation but not decidedly, so no best."""
    from report_fixtures import trial_row

    rows, base = [], [80.0, 81.0, 80.5, 81.5]
    for seed in range(4):
        for att, off in (("none", 0.0), ("se", (-5.1, -4.9, -5.0, -5.05)[seed]), ("eca", (1.0, -1.2, 0.4, -0.3)[seed])):
            v = base[seed] + off
            rows.append(
                trial_row(len(rows), seed=seed, attention=att, top1=v, test_top1=v, flops=1 + (att != "none"), params=1)
            )
    run = write_run(tmp_path / "run", rows)
    info = json.loads((run / "sweep.json").read_text())
    seeds = {"min": 2, "max": 4, "alpha": 0.05, "equivalence": 0.5, "futility": 0.0}
    (run / "sweep.json").write_text(json.dumps({**info, "space": {"budget": {"epochs": 2, "seeds": seeds}}}))
    md = (write_report(run, tmp_path / "report") / "report.md").read_text()
    summary = md[md.index("## Summary") : md.index("## Accuracy against cost")]
    budget = md[md.index("## Seeds until decided") :]
    assert "alpha = 0.05 familywise over the study's 2 comparisons (Bonferroni" in budget
    eca = next(line for line in budget.splitlines() if line.startswith("| resnet20 eca"))
    cells = [c.strip() for c in eca.strip("|").split("|")]
    assert cells[2] == "undecided"
    assert "decided worse: resnet20 se than resnet20 none (-5.00" in summary
    assert (
        f"not decided: resnet20 eca against resnet20 none ({cells[4]}): no difference of {cells[7]} points or more "
        "detected (seed budget"
    ) in summary
    assert "- no best on resnet20" in summary and "- best on resnet20" not in summary
