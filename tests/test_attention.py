"""Attention modules: shapes, gradients, SCA's parameter count and semantics, option errors."""

from __future__ import annotations

import itertools

import pytest
import torch
from torch import nn

from ablation.attention import ATTENTIONS, attention_options, build_attention, is_attention
from ablation.design.config import ATTENTION_OPTION_KEYS
from ablation.errors import ConfigError

NAMES = ("none", "se", "eca", "cbam", "coord", "triplet", "sca")
ALL_BRANCHES = ["".join(c) for r in (1, 2, 3, 4) for c in itertools.combinations("hwcs", r)]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_registry_has_every_module_with_flat_option_keys():
    assert set(ATTENTIONS) == set(NAMES)
    for name in NAMES:
        assert attention_options(name) <= set(ATTENTION_OPTION_KEYS)
    assert attention_options("none") == frozenset()
    assert attention_options("sca") == {"kernel_size", "branches", "pool", "fuse", "norm", "gate"}


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(2, 16, 8, 8), (1, 64, 5, 9)])
def test_shape_kept_and_marked(name, shape):
    module = build_attention(name, shape[1])
    x = torch.randn(shape)
    assert module(x).shape == x.shape
    assert is_attention(module) and module.attention_name == name


@pytest.mark.parametrize("name", [n for n in NAMES if n != "none"])
def test_gradients_reach_every_parameter(name):
    torch.manual_seed(0)  # a 2-4 unit ReLU bottleneck (se, cbam) can be dead for an unlucky draw
    module = build_attention(name, 64)
    x = torch.randn(4, 64, 6, 7)
    module(x).square().sum().backward()
    for pname, p in module.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, pname


@pytest.mark.parametrize("name", [n for n in NAMES if n != "none"])
def test_channels_last_input_gives_same_output(name):
    module = build_attention(name, 32).eval()
    x = torch.randn(2, 32, 6, 6)
    torch.testing.assert_close(module(x.to(memory_format=torch.channels_last)), module(x))


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("kernel_size", [1, 3, 5, 7])
@pytest.mark.parametrize("branches", ALL_BRANCHES)
@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
def test_sca_param_count_follows_options(kernel_size, branches, pool):
    planes = 2 if pool == "avgmax" else 1
    expected = sum(planes * kernel_size * (kernel_size if b in "hws" else 1) for b in branches)
    for channels in (16, 512):
        module = build_attention("sca", channels, kernel_size=kernel_size, branches=branches, pool=pool)
        assert _n_params(module) == expected


def _reference_sca(module, x: torch.Tensor) -> torch.Tensor:
    """SCA written out plainly: each pooled (C, L) plane is convolved as its (L, C) transpose."""
    pools = {"avg": [torch.mean], "max": [torch.amax], "avgmax": [torch.mean, torch.amax]}[module.pool]
    scale = 2.0 if module.gate == "2sigmoid" else 1.0

    def act(branch, z):
        return scale * torch.sigmoid(module.norms[branch](z) if module.norm == "bn" else z)

    gates = []
    if "h" in module.branches:  # (C, H) plane after pooling over W
        plane = torch.stack([p(x, dim=3) for p in pools], 1)
        gates.append(act("h", module.conv_h(plane.transpose(2, 3))).transpose(2, 3).squeeze(1).unsqueeze(3))
    if "w" in module.branches:
        plane = torch.stack([p(x, dim=2) for p in pools], 1)
        gates.append(act("w", module.conv_w(plane.transpose(2, 3))).transpose(2, 3).squeeze(1).unsqueeze(2))
    if "s" in module.branches:  # (H, W) plane after pooling over channels
        plane = torch.stack([p(x, dim=1) for p in pools], 1)
        gates.append(act("s", module.conv_s(plane)))
    if "c" in module.branches:
        vec = torch.stack([p(x, dim=(2, 3)) for p in pools], 1)
        gates.append(act("c", module.conv_c(vec)).squeeze(1)[:, :, None, None])
    if module.fuse == "mul":
        gate = gates[0]
        for g in gates[1:]:
            gate = gate * g
    else:
        gate = sum(g.expand_as(x) for g in gates) / len(gates)
    return x * gate


@pytest.mark.parametrize("branches", ALL_BRANCHES)
@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
@pytest.mark.parametrize("fuse", ["mul", "mean"])
def test_sca_matches_plain_reference(branches, pool, fuse):
    torch.manual_seed(0)
    module = build_attention("sca", 12, kernel_size=3, branches=branches, pool=pool, fuse=fuse)
    x = torch.randn(2, 12, 5, 7)
    torch.testing.assert_close(module(x), _reference_sca(module, x))


@pytest.mark.parametrize("norm", ["none", "bn"])
@pytest.mark.parametrize("gate", ["sigmoid", "2sigmoid"])
@pytest.mark.parametrize("branches", ["hwc", "hws", "s", "hwcs"])
@pytest.mark.parametrize("fuse", ["mul", "mean"])
def test_sca_gate_normalisation_and_scale_match_reference(norm, gate, branches, fuse):
    torch.manual_seed(0)
    module = build_attention("sca", 12, branches=branches, fuse=fuse, norm=norm, gate=gate, pool="avgmax")
    x = torch.randn(3, 12, 5, 7)
    for mode in (True, False):  # BatchNorm: batch statistics in training, running ones in eval
        module.train(mode)
        torch.testing.assert_close(module(x), _reference_sca(module, x))
    per_bn = 2 if norm == "bn" else 0
    assert _n_params(module) == sum(2 * 3 * (3 if b in "hws" else 1) + per_bn for b in branches)


def test_sca_s_branch_is_cbams_spatial_gate():
    """Branch s pools over channels (mean and max, in CBAM's order), one k x k conv, sigmoid: CBAM's
    spatial gate (timm's ``SpatialAttn`` without its BatchNorm)."""
    torch.manual_seed(0)
    sca = build_attention("sca", 16, branches="s", pool="avgmax", kernel_size=7, gate="sigmoid").eval()
    x = torch.randn(2, 16, 9, 9)
    planes = torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)
    with torch.no_grad():
        expected = x * torch.sigmoid(torch.nn.functional.conv2d(planes, sca.conv_s.weight, padding=3))
        torch.testing.assert_close(sca(x), expected)


def test_sca_two_sigmoid_gates_start_near_identity():
    """At initialisation three gates near 0.5 multiplied scale the input by about 1/8; 2 x sigmoid
    gates (or a mean) keep it near its size."""
    torch.manual_seed(0)
    x = torch.randn(4, 32, 8, 8)

    def ratio(**options):
        module = build_attention("sca", 32, **options)
        with torch.no_grad():
            for p in module.parameters():
                torch.nn.init.zeros_(p) if p.ndim > 1 else None
            return float(module(x).norm() / x.norm())

    assert ratio(branches="hwc", gate="sigmoid") == pytest.approx(0.125)
    assert ratio(branches="hwc", fuse="mean", gate="sigmoid") == pytest.approx(0.5)
    assert ratio() == pytest.approx(1.0)  # the default reading: hws, mul, 2 x sigmoid
    assert ratio(branches="hws", gate="2sigmoid") == pytest.approx(1.0)
    assert ratio(branches="hws", fuse="mean", gate="2sigmoid") == pytest.approx(1.0)


def test_sca_h_branch_mixes_neighbouring_channels():
    """The (C, H) convolution is cross-dimensional: channel c's gate depends on channel c+1."""
    module = build_attention("sca", 8, branches="h")
    x = torch.randn(1, 8, 4, 4)
    x.requires_grad_(True)
    module(x)[0, 3].sum().backward()
    assert x.grad[0, 4].abs().sum() > 0 and x.grad[0, 6].abs().sum() == 0


def test_sca_gradcheck_all_fusions():
    for fuse, branches, gate in (
        ("mul", "hwc", "sigmoid"),
        ("mean", "hwc", "sigmoid"),
        ("mul", "hwcs", "2sigmoid"),
        ("mean", "hws", "2sigmoid"),
    ):
        module = build_attention("sca", 6, fuse=fuse, pool="avgmax", branches=branches, gate=gate).double()
        x = torch.randn(1, 6, 3, 4, dtype=torch.double, requires_grad=True)
        assert torch.autograd.gradcheck(module, (x,))


def test_paper_defaults():
    se = build_attention("se", 256)
    assert se.fc1.out_channels == 16 and se.fc1.bias is not None
    cbam = build_attention("cbam", 256)
    assert cbam.channel.fc1.out_channels == 16 and cbam.spatial.conv.conv.kernel_size == (7, 7)
    assert build_attention("coord", 512).conv1.out_channels == 16
    assert build_attention("coord", 64).conv1.out_channels == 8  # floor of 8
    triplet = build_attention("triplet", 64)
    assert _n_params(triplet) == 3 * (2 * 7 * 7 + 2)
    # ECA: k = |log2(C)/2 + 1/2| rounded to odd, e.g. 5 for 256 channels, 3 for 64
    assert build_attention("eca", 256).conv.kernel_size == (5,)
    assert build_attention("eca", 64).conv.kernel_size == (3,)
    assert build_attention("eca", 256, kernel_size=7).conv.kernel_size == (7,)
    assert build_attention("se", 256, reduction=8).fc1.out_channels == 32


@pytest.mark.parametrize(
    "name, options, words",
    [
        ("sca", {"kernel_size": 4}, ["kernel_size", "odd"]),
        ("sca", {"kernel_size": 0}, ["kernel_size", "odd"]),
        ("sca", {"kernel_size": -3}, ["kernel_size"]),
        ("sca", {"branches": "hx"}, ["branches", "hwcs"]),
        ("sca", {"norm": "ln"}, ["norm", "bn"]),
        ("sca", {"gate": "tanh"}, ["gate", "2sigmoid"]),
        ("sca", {"branches": ""}, ["branches", "non-empty"]),
        ("sca", {"branches": "hh"}, ["branches", "distinct"]),
        ("sca", {"pool": "median"}, ["pool", "avgmax"]),
        ("sca", {"fuse": "sum"}, ["fuse", "mean"]),
        ("sca", {"reduction": 4}, ["reduction", "branches"]),
        ("none", {"kernel_size": 3}, ["kernel_size", "none"]),
        ("se", {"kernel_size": 3}, ["kernel_size", "reduction"]),
        ("se", {"reduction": 0}, ["reduction", ">= 1"]),
        ("eca", {"kernel_size": 2}, ["kernel_size", "odd"]),
        ("cbam", {"kernel_size": 6}, ["kernel_size", "odd"]),
        ("coord", {"reduction": 0}, ["reduction"]),
        ("triplet", {"kernel_size": 8}, ["kernel_size", "odd"]),
        ("sa", {}, ["unknown attention", "sca"]),
    ],
)
def test_bad_options_raise_config_error_naming_option_and_allowed(name, options, words):
    with pytest.raises(ConfigError) as info:
        build_attention(name, 16, **options)
    assert isinstance(info.value, ValueError)
    for word in words:
        assert word in str(info.value)
