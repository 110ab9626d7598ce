"""Cost accounting: every op our models use is counted or ignored for a stated reason, the
counting conventions, attention's share, latency bookkeeping and the ``ablate profile`` CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from ablation.attention import build_attention
from ablation.cli import main
from ablation.models import build_model, positions
from ablation.run.profile import ZERO_COST_OPS, attention_modules, profile_model, unsupported_ops

CONTRACT_KEYS = {
    "params",
    "flops",
    "flops_convfc",
    "attention_params",
    "attention_flops",
    "latency_ms",
    "latency_batch",
    "latency_threads",
    "latency_device",
    "uncounted_ops",
}
MODULES = ("none", "se", "eca", "cbam", "coord", "triplet", "sca")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("attention", MODULES)
@pytest.mark.parametrize("backbone", ("resnet20", "mobilenet_v2"))
def test_no_unsupported_ops_and_attention_flops_counted(backbone, attention):
    for position in positions(backbone):
        width = 0.5 if backbone == "mobilenet_v2" else 1.0
        model = build_model(backbone, attention, position, num_classes=10, small_input=True, width_mult=width)
        assert unsupported_ops(model, 16) == {}
        report = profile_model(model, 16, latency=False)
        if attention == "none":
            assert report.attention_flops == 0 and report.attention_params == 0
        else:
            assert report.attention_flops > 0
            assert all(f > 0 for f in report.attention_flops_by_module.values())
            assert report.attention_flops == sum(report.attention_flops_by_module.values())
            assert set(report.attention_flops_by_module) == set(attention_modules(model))


@pytest.mark.parametrize(
    "options",
    [{"branches": "hwcs", "norm": "bn", "gate": "2sigmoid"}, {"branches": "hws", "fuse": "mean", "pool": "avgmax"}],
)
def test_sca_readings_counted_in_full(options):
    """The s branch, gate BatchNorm and the 2 x sigmoid scale all have FLOP handles: each adds
    its elementwise work to the count (a handle missing would count it zero)."""
    plain = build_model("resnet20", "sca", num_classes=10, small_input=True, branches="hw")
    model = build_model("resnet20", "sca", num_classes=10, small_input=True, **options)
    assert unsupported_ops(model, 16) == {}
    base, more = (profile_model(m, 16, latency=False).attention_flops for m in (plain, model))
    sizes = []  # elements of every map SCA gates: the s gate multiplies each of them once more
    hooks = [
        m.register_forward_hook(lambda mod, i, o: sizes.append(i[0].numel()))
        for m in model.modules()
        if type(m).__name__ == "SCA"
    ]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, 16, 16))
    for h in hooks:
        h.remove()
    assert more - base >= sum(sizes) > 0


def test_imagenet_stem_ops_supported():
    assert unsupported_ops(build_model("resnet50", "triplet", stages=[4]), 64) == {}


def test_ignored_ops_have_reasons():
    assert ZERO_COST_OPS and all(isinstance(r, str) and r for r in ZERO_COST_OPS.values())
    assert "aten::relu" not in ZERO_COST_OPS and "aten::max" not in ZERO_COST_OPS


class _Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 3, 1, bias=False)

    def forward(self, x):
        y = torch.relu(self.conv(x))  # conv 2*3*16 = 96, relu 48
        y = nn.functional.max_pool2d(y, 2)  # 3*2*2 outputs x 4 window elements = 48
        return y * torch.sigmoid(y.mean(3, keepdim=True))  # mean 12 in, sigmoid 6, mul 12


def test_counting_conventions():
    report = profile_model(_Tiny(), 4, in_channels=2, latency=False)
    assert report.flops == 96 + 48 + 48 + 12 + 6 + 12


def test_sca_flops_follow_from_its_ops():
    """SCA with branches hwc fused by product on a (C, H, W) map: two directional means (2 CHW),
    k x k convs on the (C, H) and (C, W) planes, 1-D conv on C, sigmoids, the global mean from
    the (C, H) map, the small gate product (C H) and two full-size multiplies (2 CHW)."""
    c, h, w, k = 8, 5, 6, 3
    model = nn.Sequential(build_attention("sca", c, branches="hwc", fuse="mul", norm="none", gate="sigmoid"))
    expected = (
        2 * c * h * w + c * h * k * k + c * w * k * k + c * k + (c * h + c * w + c) + c * h + c * h + 2 * c * h * w
    )
    report = profile_model(model, (h, w), in_channels=c, latency=False)
    assert report.flops == report.attention_flops == expected
    assert report.attention_params == report.params == 21


def test_report_fields_and_model_state_restored():
    model = build_model("resnet20", "eca", num_classes=10)
    model.train()
    report = profile_model(model, 16, batch_size=3, runs=2, warmup=1, threads=1)
    assert model.training
    d = report.as_dict()
    assert set(d) == CONTRACT_KEYS
    assert d["params"] == sum(p.numel() for p in model.parameters())
    assert d["attention_params"] == sum(p.numel() for m in attention_modules(model).values() for p in m.parameters())
    assert (
        d["latency_ms"] > 0 and d["latency_batch"] == 3 and d["latency_threads"] == 1 and d["latency_device"] == "cpu"
    )
    assert torch.get_num_threads() == 1
    assert profile_model(model, 16, latency=False).latency_ms is None


def test_flops_are_per_image_and_scale_with_input():
    model = build_model("resnet20", num_classes=10)
    small, large = (profile_model(model, s, latency=False).flops for s in (16, 32))
    assert 3.5 < large / small < 4.5


def test_cli_json(capsys):
    code = main(
        [
            "profile",
            "--backbone",
            "resnet20",
            "--attention",
            "sca",
            "--position",
            "standard",
            "--kernel-size",
            "5",
            "--branches",
            "hw",
            "--input-size",
            "16",
            "--num-classes",
            "10",
            "--runs",
            "2",
            "--threads",
            "1",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert CONTRACT_KEYS <= set(out) and out["attention_params"] == 9 * 2 * 25
    assert out["kernel_size"] == 5 and out["branches"] == "hw" and len(out["attention_flops_by_module"]) == 9


def test_cli_table_and_errors(capsys):
    assert main(["profile", "--backbone", "resnet20", "--attention", "se", "--input-size", "16", "--no-latency"]) == 0
    out = capsys.readouterr().out
    assert "attention_flops" in out and "multiply-adds" in out
    assert main(["profile", "--backbone", "resnet20", "--attention", "se", "--kernel-size", "3"]) == 2
    assert "kernel_size" in capsys.readouterr().err
    assert main(["profile", "--backbone", "resnet20", "--position", "dw"]) == 2


def test_cli_shows_where_the_backbone_places_attention(capsys, monkeypatch):
    """Position and stages as the backbone reads them: ours take both (stages default all); a
    user's backbone that places its attention itself takes neither, so neither is shown."""
    import re
    from pathlib import Path

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "docs" / "byo_block"))
    common = ["--attention", "se", "--input-size", "16", "--in-channels", "1", "--no-latency", "--json"]
    assert main(["profile", "--backbone", "resnet20", "--stages", "2,3", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["position"] == "standard" and out["stages"] == [2, 3]
    assert main(["profile", "--backbone", "resnet20", *common[:-1]]) == 0
    assert re.search(r"stages\s*│\s*all", capsys.readouterr().out)
    assert main(["profile", "--backbone", "my_blocks:tiny_net", *common]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "position" not in out and "stages" not in out and out["attention_params"] > 0
