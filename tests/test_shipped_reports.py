"""Every shipped report regenerates identically from the data files in its folder: ``ablate
report`` on a copy of ``reports/X``'s data writes the committed tables and summary (report.md,
report.html, tables.tex, summary.csv, convergence.csv where it has epochs.csv, path_parity.csv
where its study compared training paths and setting_change.csv where it was compared with an
earlier run kept in its against/ folder; the PNGs are not compared).

Two things in them depend on when and where a report is written, and are normalised: the
"Generated <date> <time> UTC" line, and the paragraph comparing the writing machine's fingerprint
with the trials' (the machine is taken to be the trials' where they recorded one value).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from ablation.cli import main
from ablation.provenance import FINGERPRINT_KEYS, fingerprint_here
from ablation.analysis.convergence import CONVERGENCE_FILE
from ablation.analysis.path_parity import PARITY_FILE
from ablation.analysis.report import DATA_FILES, REPORT_FILES
from ablation.analysis.setting_change import AGAINST_FILES, CHANGE_FILE
from ablation.run.epochs import EPOCHS_FILE
from ablation.run.results import RESULTS_FILE

REPORTS = Path(__file__).resolve().parent.parent / "reports"
SHIPPED = sorted(p.parent.name for p in REPORTS.glob(f"*/{RESULTS_FILE}"))
GENERATED = re.compile(r"Generated \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def normalised(text: str) -> str:
    return GENERATED.sub("Generated <time> UTC", text)


def test_every_report_folder_with_data_is_checked():
    assert len(SHIPPED) >= 7 and "quick" in SHIPPED and "benchmarks" not in SHIPPED


@pytest.mark.slow
@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_report_regenerates_identically(name, tmp_path, monkeypatch):
    shipped = REPORTS / name
    run = tmp_path / name  # a copy: the ranking writes optuna.db into the run folder
    run.mkdir()
    for file in (*DATA_FILES, *AGAINST_FILES):
        if (shipped / file).is_file():
            (run / file).parent.mkdir(exist_ok=True)
            shutil.copy(shipped / file, run / file)
    recorded = pd.read_csv(run / RESULTS_FILE, dtype=str)
    trials = {k: sorted(set(recorded[k].dropna())) for k in [*FINGERPRINT_KEYS, "gpu"] if k in recorded}
    here = {**fingerprint_here(), **{k: v[0] for k, v in trials.items() if len(v) == 1 and k != "gpu"}}
    monkeypatch.setattr("ablation.analysis.report.fingerprint_here", lambda: dict(here))
    if len(trials.get("gpu", [])) == 1:
        monkeypatch.setattr("ablation.analysis.report.gpu_here", lambda: trials["gpu"][0])

    assert main(["report", str(run), "--out", str(tmp_path / "out")]) == 0
    with_curves = (shipped / EPOCHS_FILE).is_file()
    also = ((CONVERGENCE_FILE,) if with_curves else ()) + tuple(
        f for f in (PARITY_FILE, CHANGE_FILE) if (shipped / f).is_file()
    )
    for file in (*REPORT_FILES, *also):
        want, got = (shipped / file).read_text(), (tmp_path / "out" / file).read_text()
        assert normalised(got) == normalised(want), f"reports/{name}/{file} differs when regenerated"
