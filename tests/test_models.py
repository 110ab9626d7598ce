"""Backbones with attention: every module x backbone x position builds and keeps shapes;
insertion points, stage selection, stems and published parameter counts."""

from __future__ import annotations

import pytest
import torch

from ablation.attention import is_attention
from ablation.errors import ConfigError
from ablation.models import BACKBONES, build_model, positions, validate_model_args
from ablation.run.profile import attention_modules

MODULES = ("none", "se", "eca", "cbam", "coord", "triplet", "sca")
RESNET_POSITIONS = ("standard", "pre", "post", "identity")
MOBILENET_POSITIONS = ("standard", "dw", "post")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_backbones_and_positions():
    assert set(BACKBONES) == {"resnet18", "resnet34", "resnet50", "resnet101", "resnet20", "resnet56", "mobilenet_v2"}
    assert positions("resnet50") == RESNET_POSITIONS
    assert positions("mobilenet_v2") == MOBILENET_POSITIONS


CASES = [
    (backbone, attention, position)
    for backbone in ("resnet18", "resnet50", "resnet20", "mobilenet_v2")
    for attention in MODULES
    for position in positions(backbone)
]
#: Blocks per backbone (standard/pre/identity/dw: every block; post: MobileNetV2 blocks with a residual).
BLOCKS = {"resnet18": 8, "resnet50": 16, "resnet20": 9, "mobilenet_v2": 17}


@pytest.mark.parametrize("backbone, attention, position", CASES)
def test_every_module_backbone_position_builds_and_keeps_shapes(backbone, attention, position):
    small = backbone in ("resnet20", "mobilenet_v2")
    model = build_model(
        backbone,
        attention,
        position,
        num_classes=7,
        small_input=small,
        width_mult=0.5 if backbone == "mobilenet_v2" else 1.0,
    ).eval()
    shapes = []
    for module in attention_modules(model).values():
        module.register_forward_hook(lambda m, i, o: shapes.append((i[0].shape, o.shape)))
    with torch.no_grad():
        out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 7)
    expected = (
        0 if attention == "none" else (10 if (backbone, position) == ("mobilenet_v2", "post") else BLOCKS[backbone])
    )
    assert len(attention_modules(model)) == expected
    assert len(shapes) == expected and all(i == o for i, o in shapes)


@pytest.mark.parametrize("backbone", ("resnet34", "resnet56", "resnet101"))
def test_other_resnets_build(backbone):
    model = build_model(backbone, "sca", num_classes=5).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 32, 32)).shape == (1, 5)
    assert len(attention_modules(model)) == {"resnet34": 16, "resnet56": 27, "resnet101": 33}[backbone]


@pytest.mark.parametrize(
    "position, name, channels",
    [
        ("standard", "layer2.0.bn2.1", 128),  # end of the residual branch, before the addition
        ("pre", "layer2.0.conv1.0", 64),  # start of the residual branch, the block's input width
        ("identity", "layer2.0.downsample.1", 128),  # after the projection shortcut
        ("post", "layer2.0.1", 128),  # after the addition and ReLU
    ],
)
def test_resnet_insertion_points(position, name, channels):
    model = build_model("resnet18", "se", position)
    found = attention_modules(model)
    assert name in found and found[name].fc1.in_channels == channels
    if position == "identity":
        assert is_attention(model.layer1[0].downsample)  # identity shortcut: attention alone


def test_mobilenet_insertion_points():
    model = build_model("mobilenet_v2", "se", "standard")
    assert is_attention(model.features[2].conv[-1]) and model.features[2].conv[-1].fc1.in_channels == 24
    model = build_model("mobilenet_v2", "se", "dw")
    assert is_attention(model.features[2].conv[1][1]) and model.features[2].conv[1][1].fc1.in_channels == 96
    model = build_model("mobilenet_v2", "se", "post")
    assert is_attention(model.features[3][1])  # block 3 has a residual, block 2 does not
    assert not any(is_attention(m) for m in model.features[2].modules())


def test_stages_select_where_attention_goes():
    model = build_model("resnet50", "eca", stages=[3, 4])
    names = list(attention_modules(model))
    assert len(names) == 6 + 3 and all(n.startswith(("layer3.", "layer4.")) for n in names)
    model = build_model("mobilenet_v2", "eca", "post", stages=[4])
    assert set(attention_modules(model)) == {"features.8.1", "features.9.1", "features.10.1"}


def test_gradients_reach_attention_parameters_in_a_model():
    model = build_model("resnet20", "sca", "standard", num_classes=10, kernel_size=3, branches="hwc")
    model(torch.randn(4, 3, 16, 16)).logsumexp(1).sum().backward()
    params = [(n, p) for n, m in attention_modules(model).items() for p in m.parameters()]
    assert len(params) == 9 * 3
    for p in (p for _, p in params):
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_small_input_stems_and_greyscale():
    resnet = build_model("resnet18", small_input=True, in_channels=1, num_classes=10)
    assert resnet.conv1.stride == (1, 1) and resnet.conv1.kernel_size == (3, 3) and resnet.conv1.in_channels == 1
    assert isinstance(resnet.maxpool, torch.nn.Identity)
    features = []
    resnet.layer4.register_forward_hook(lambda m, i, o: features.append(o.shape))
    resnet.eval()(torch.randn(1, 1, 32, 32))
    assert features[0][-2:] == (4, 4)  # 32 px / 8, not / 32
    assert build_model("resnet18", in_channels=1).conv1.kernel_size == (7, 7)
    mobile = build_model("mobilenet_v2", small_input=True, in_channels=1)
    assert mobile.features[0][0].stride == (1, 1) and mobile.features[0][0].in_channels == 1
    assert build_model("mobilenet_v2").features[0][0].stride == (2, 2)


def test_width_mult_is_honoured():
    assert build_model("mobilenet_v2", width_mult=0.5).features[-1][0].in_channels == 160
    assert _params(build_model("mobilenet_v2", width_mult=0.5)) < _params(build_model("mobilenet_v2"))
    with pytest.raises(ConfigError, match="width_mult"):
        build_model("resnet18", width_mult=0.5)


def test_published_parameter_counts():
    assert abs(_params(build_model("resnet50")) / 25.56e6 - 1) < 0.002
    assert abs(_params(build_model("resnet50", "se")) / 28.09e6 - 1) < 0.002  # Hu et al. 2018, Table 2
    # He et al. 2016 (CIFAR-10): 0.27M / 0.85M; our projection shortcuts add a few thousand
    assert abs(_params(build_model("resnet20", num_classes=10)) / 0.27e6 - 1) < 0.02
    assert abs(_params(build_model("resnet56", num_classes=10)) / 0.85e6 - 1) < 0.02
    sca = _params(build_model("resnet50", "sca")) - _params(build_model("resnet50"))
    assert sca == 16 * (9 + 9 + 9)  # default branches h, w, s: few dozen per block, independent of C


@pytest.mark.parametrize(
    "args, words",
    [
        (("resnet9", "standard", None), ["backbone", "resnet50", "mobilenet_v2"]),
        (("resnet50", "dw", None), ["position", "identity"]),
        (("mobilenet_v2", "identity", None), ["position", "dw"]),
        (("resnet50", "standard", [5]), ["stages", "[1, 2, 3, 4]"]),
        (("resnet20", "standard", [4]), ["stages", "[1, 2, 3]"]),
        (("resnet20", "standard", []), ["stages", "non-empty"]),
        (("resnet20", "standard", ["1"]), ["stages"]),
        (("mobilenet_v2", "post", [1]), ["stages", "[2, 3, 4, 5, 6]"]),
    ],
)
def test_invalid_model_args_name_valid_values(args, words):
    for call in (lambda: validate_model_args(*args), lambda: build_model(args[0], "sca", args[1], args[2])):
        with pytest.raises(ConfigError) as info:
            call()
        for word in words:
            assert word in str(info.value)


def test_bad_attention_options_fail_before_building():
    with pytest.raises(ConfigError, match="kernel_size"):
        build_model("resnet101", "sca", kernel_size=2)
    with pytest.raises(ConfigError, match="reduction"):
        build_model("resnet20", "none", reduction=4)
