"""The papers' FLOP convention beside ours (``flops_convfc``: conv and FC multiply-adds only),
carried from the profile through results.csv to the report, and pooling counted per window element."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from torch import nn

from ablation.cli import main
from ablation.design.config import TrialConfig
from ablation.models import build_model
from ablation.run.profile import profile_model
from ablation.analysis.report import write_report
from ablation.run.results import TrialRecord, row
from ablation.analysis.tables import CONVFC
from report_fixtures import study_rows, write_run

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(
    "backbone, weights", [("resnet50", "ResNet50_Weights"), ("mobilenet_v2", "MobileNet_V2_Weights")]
)
def test_convfc_matches_torchvision_documented_figures(backbone, weights):
    """torchvision documents GFLOPS (conv and FC multiply-adds, 3 decimals) in its weights' meta:
    ResNet-50 4.089, MobileNetV2 0.301 at 224 px. Reading the meta downloads nothing."""
    import torchvision.models as tvm

    documented = getattr(tvm, weights).IMAGENET1K_V1.meta["_ops"]
    report = profile_model(build_model(backbone), 224, latency=False)
    assert round(report.flops_convfc / 1e9, 3) == documented
    assert report.flops > report.flops_convfc  # ours also counts BN, activations, adds and pooling


class _Mixed(nn.Module):
    """Conv 2->4 (1x1) on 8x8: 512 MACs; overlapping average pool 3x3, stride 1, pad 1: 4*64
    outputs x 9 = 2304; adaptive average pool 8 -> 5 per side, windows [0,2) [1,4) [3,5) [4,7)
    [6,8) (PyTorch's floor/ceil bounds), 12 reads per side: 4*12*12 = 576; global average pool
    of the 4x5x5 map: 100; FC 4 -> 3: 12 MACs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 1, bias=False)
        self.pool = nn.AvgPool2d(3, stride=1, padding=1)
        self.adaptive = nn.AdaptiveAvgPool2d(5)
        self.fc = nn.Linear(4, 3)

    def forward(self, x):
        y = self.adaptive(self.pool(self.conv(x)))
        return self.fc(nn.functional.adaptive_avg_pool2d(y, 1).flatten(1))


def test_pools_count_every_window_element_and_convfc_counts_conv_and_fc_only():
    report = profile_model(_Mixed(), 8, in_channels=2, latency=False)
    assert report.flops == 512 + 2304 + 576 + 100 + 12
    assert report.flops_convfc == 512 + 12


def test_profile_cli_shows_both_conventions(capsys):
    args = ["profile", "--backbone", "resnet20", "--input-size", "16", "--num-classes", "10", "--no-latency"]
    assert main([*args, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 < out["flops_convfc"] < out["flops"]
    assert main(args) == 0
    table = capsys.readouterr().out
    assert "flops_convfc" in table and "papers' and torchvision's convention" in table


def test_trial_cost_and_results_row_carry_convfc():
    from ablation.run.train import measure_cost

    cfg = TrialConfig(backbone="resnet20", attention="eca", dataset="synthetic", latency_runs=1)
    model = build_model("resnet20", "eca", num_classes=10, small_input=True)
    cost = measure_cost(model, cfg, SimpleNamespace(input_size=16, in_channels=3), torch.device("cpu"))
    assert cost["flops_convfc"] == profile_model(model, 16, latency=False).flops_convfc < cost["flops"]
    record = TrialRecord("t0", cfg.model_dump(), "completed", history=[{"epoch": 10, "top1": 50.0, **cost}])
    assert row(record)["flops_convfc"] == cost["flops_convfc"]


@pytest.mark.slow
def test_report_shows_papers_convention_and_old_runs_still_report(tmp_path):
    rows = [dict(r, flops_convfc=r["flops"] * 0.9) for r in study_rows()]
    md = (write_report(write_run(tmp_path / "run", rows), tmp_path / "report") / "report.md").read_text()
    assert f"| {CONVFC} " in md and "the convention of the papers" in md
    assert "36.0000M" in md and "harness recorded it" not in md  # resnet20 none: 0.9 x 40M
    old = pd.DataFrame(study_rows()).drop(columns=["flops_convfc"])  # a results.csv made before the column
    run = tmp_path / "old"
    write_run(run, [])
    old.to_csv(run / "results.csv", index=False)
    md = (write_report(run, tmp_path / "old_report") / "report.md").read_text()
    assert f"| {CONVFC} " in md and "trials run before the harness recorded it" in md
    tex = (tmp_path / "old_report" / "tables.tex").read_text()
    assert "conv+FC" in tex
