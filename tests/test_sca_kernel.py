"""The fused SCA inference kernel: same results as the eager module, used only where it applies,
and a working fallback where it cannot be built."""

from __future__ import annotations

import itertools
import shutil

import pytest
import torch

from ablation.attention import build_attention, sca_kernel
from ablation.attention.sca import SCA
from ablation.design.execution import prepare
from ablation.models import build_model, positions

needs_compiler = pytest.mark.skipif(
    not (shutil.which("cc") or shutil.which("gcc")), reason="no C compiler: the kernel cannot be built here"
)
BRANCHES = ["".join(c) for r in (1, 2, 3) for c in itertools.combinations("hwc", r)]
#: (N, H, W) for every code path of the kernel: scalar rows (W < 4, planes under 8 floats, W past
#: 128), short rows read from both ends (W 4-7), whole 8-float vectors with and without an
#: overlapping last one (8, 9, 14, 16, 28, 56, 70, 128), row counts that are not a multiple of 8
#: (the transposing row reduction), and the widths with their own compiled copy (7, 14, 16, 28, 56).
SHAPES = [
    (1, 7, 7),
    (2, 5, 3),
    (3, 1, 1),
    (1, 14, 9),
    (2, 6, 70),
    (1, 2, 4),
    (1, 3, 16),
    (2, 4, 14),
    (1, 28, 28),
    (2, 9, 5),
    (1, 2, 6),
    (1, 1, 6),
    (1, 19, 8),
    (1, 3, 129),
    (1, 2, 128),
    (2, 3, 56),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture
def fresh_library():
    """Forget the loaded kernel so a test can change how it is found; forget again after."""
    sca_kernel.library.cache_clear()
    yield
    sca_kernel.library.cache_clear()


#: The readings the fused kernel computes: branches from h, w, c with plain sigmoid gates, no
#: gate normalisation (``SCA.kernel_ok``); the tests ask for them whatever the module's default.
KERNEL_READING = {"branches": "hwc", "norm": "none", "gate": "sigmoid"}


def random_sca(channels: int, **options) -> torch.nn.Module:
    module = build_attention("sca", channels, **(KERNEL_READING | options)).eval()
    module.fused = True  # the fused-sca execution path
    for p in module.parameters():
        torch.nn.init.normal_(p)  # large weights: gates far from 0.5 show any mismatch
    return module


@needs_compiler
def test_kernel_builds_where_a_compiler_exists():
    assert sca_kernel.library() is not None


@needs_compiler
@pytest.mark.parametrize("branches", BRANCHES)
@pytest.mark.parametrize("pool", ["avg", "max", "avgmax"])
@pytest.mark.parametrize("fuse", ["mul", "mean"])
def test_kernel_matches_eager_for_every_option(branches, pool, fuse):
    torch.manual_seed(0)
    for k in (1, 3, 5, 7):
        module = random_sca(12, kernel_size=k, branches=branches, pool=pool, fuse=fuse)
        weights = [None if conv is None else conv.weight for conv in (module.conv_h, module.conv_w, module.conv_c)]
        for n, h, w in SHAPES:
            x = torch.randn(n, 12, h, w) * 3
            with torch.inference_mode():
                assert sca_kernel.applies(x, weights)
                fast = sca_kernel.forward(x, k, branches, pool, fuse, weights)
                torch.testing.assert_close(
                    fast, module.forward_eager(x), rtol=1e-5, atol=1e-5, msg=f"k={k} shape={(n, 12, h, w)}"
                )


@needs_compiler
def test_kernel_in_resnet50_matches_eager_and_keeps_channel_context():
    """Deep stages (2048 channels at 7 x 7) go through several channel blocks: gates at block
    edges need pooled values of the neighbouring block."""
    torch.manual_seed(0)
    module = random_sca(2048)
    x = torch.randn(2, 2048, 7, 7)
    with torch.inference_mode():
        torch.testing.assert_close(module(x), module.forward_eager(x), rtol=1e-5, atol=1e-5)


@needs_compiler
def test_batch_split_across_threads_gives_the_same_result():
    torch.manual_seed(0)
    module = random_sca(32)
    x = torch.randn(5, 32, 14, 14)
    with torch.inference_mode():
        one = module(x)
        torch.set_num_threads(2)
        two = module(x)
    torch.testing.assert_close(two, one, rtol=0, atol=0)
    torch.testing.assert_close(two, module.forward_eager(x), rtol=1e-5, atol=1e-5)


@needs_compiler
def test_kernel_runs_only_where_it_applies(monkeypatch):
    """Off by default (SCA runs PyTorch ops like its peers); on the fused-sca path inference on CPU
    float32 uses it; autograd, tracing (fvcore), other dtypes and channels-last tensors run the eager ops."""
    calls = []
    real = sca_kernel.forward
    monkeypatch.setattr(sca_kernel, "forward", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = build_model("resnet20", attention="sca", num_classes=10, small_input=True, **KERNEL_READING).eval()
    inserted = sum(1 for m in model.modules() if getattr(m, "attention_name", None) == "sca")
    x = torch.randn(2, 3, 32, 32)
    with torch.inference_mode():
        model(x)
        prepare(model, "eager")(x)
    assert not calls  # the default and the eager path: no fused kernel
    prepare(model, "fused-sca")

    with torch.inference_mode():
        model(x)
    assert len(calls) == inserted
    calls.clear()
    with torch.no_grad():
        model(x)
    assert len(calls) == inserted
    calls.clear()

    out = model(x)  # autograd on: eager, gradients reach the SCA convolutions
    out.sum().backward()
    assert not calls
    assert all(m.conv_h.weight.grad is not None for m in model.modules() if hasattr(m, "conv_h"))
    with torch.no_grad():
        torch.jit.trace(model, x, check_trace=False)  # as fvcore traces (the check re-runs eagerly)
        model.double()(x.double())
        model.float()(x.contiguous(memory_format=torch.channels_last))
    assert not calls


def test_switched_off_by_environment(monkeypatch, fresh_library):
    monkeypatch.setenv(sca_kernel.ENV_SWITCH, "0")
    assert sca_kernel.library() is None
    module = random_sca(8)
    x = torch.randn(1, 8, 5, 5)
    with torch.inference_mode():
        assert not sca_kernel.applies(x, [module.conv_h.weight, module.conv_w.weight, module.conv_c.weight])
        torch.testing.assert_close(module(x), module.forward_eager(x), rtol=0, atol=0)


def test_missing_compiler_warns_once_and_falls_back(monkeypatch, tmp_path, fresh_library):
    monkeypatch.setenv("CC", str(tmp_path / "no-such-cc"))
    monkeypatch.setenv("ABLATION_CACHE_DIR", str(tmp_path / "cache"))
    module = random_sca(8)
    x = torch.randn(1, 8, 5, 5)
    with pytest.warns(UserWarning, match="SCA kernel unavailable"):
        with torch.inference_mode():
            out = module(x)
    torch.testing.assert_close(out, module.forward_eager(x), rtol=0, atol=0)
    assert not list((tmp_path / "cache" / "kernels").glob("*.so*"))  # no half-written library left


@needs_compiler
@pytest.mark.slow
def test_build_is_cached_per_source_and_cpu(monkeypatch, tmp_path, fresh_library):
    monkeypatch.setenv("ABLATION_CACHE_DIR", str(tmp_path))
    assert sca_kernel.library() is not None
    built = list((tmp_path / "kernels").glob("sca_kernel_*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    sca_kernel.library.cache_clear()
    assert sca_kernel.library() is not None
    assert built[0].stat().st_mtime_ns == stamp  # loaded, not rebuilt


@needs_compiler
@pytest.mark.parametrize(
    "branches, pool, fuse", [("hwc", "avg", "mul"), ("hw", "avgmax", "mean"), ("wc", "max", "mul")]
)
def test_kernel_gates_in_place_for_every_shape(branches, pool, fuse):
    """Written over its input, the kernel gives the eager result: vectors that overlap outputs
    already written are read before those writes."""
    torch.manual_seed(0)
    for k in (1, 3):
        module = random_sca(12, kernel_size=k, branches=branches, pool=pool, fuse=fuse)
        weights = module._conv_weights()
        for n, h, w in SHAPES + [(1, 6, 6), (2, 5, 7), (1, 3, 15)]:
            x = torch.randn(n, 12, h, w) * 3
            expected = module.forward_eager(x)
            with torch.inference_mode():
                buffer = x.clone()
                out = sca_kernel.forward(buffer, k, branches, pool, fuse, weights, inplace=True)
            assert out.data_ptr() == buffer.data_ptr()
            torch.testing.assert_close(out, expected, rtol=1e-5, atol=1e-5, msg=f"k={k} shape={(n, 12, h, w)}")


@needs_compiler
@pytest.mark.parametrize("backbone, size", [("resnet20", 32), ("resnet50", 112), ("mobilenet_v2", 112)])
def test_models_match_eager_where_sca_gates_in_place(backbone, size):
    """build_model lets SCA gate in place only where nothing else reads its input: at every
    position the model's output equals the eager model's (a wrong place would corrupt a
    shortcut), and the pre-activation position, whose input is also the shortcut, is not in place."""
    torch.manual_seed(0)
    x = torch.randn(2, 3, size, size)
    for position in positions(backbone):
        model = prepare(
            build_model(
                backbone,
                attention="sca",
                position=position,
                num_classes=10,
                small_input=backbone == "resnet20",
                **KERNEL_READING,
            ).eval(),
            "fused-sca",
        )
        scas = [m for m in model.modules() if isinstance(m, SCA)]
        for module in scas:
            for p in module.parameters():
                torch.nn.init.normal_(p)
        in_place = {m.inplace for m in scas}
        if position in ("standard", "post", "dw"):
            assert in_place == {True}, position
        if position == "pre":
            assert in_place == {False}
        with torch.inference_mode():
            fast = model(x)
        for module in scas:
            module.forward = module.forward_eager
        with torch.no_grad():
            torch.testing.assert_close(fast, model(x), rtol=1e-5, atol=1e-6, msg=position)


@needs_compiler
@pytest.mark.parametrize("options", [{"branches": "hws"}, {"norm": "bn"}, {"gate": "2sigmoid"}])
def test_readings_the_kernel_does_not_compute_fall_back_to_eager(monkeypatch, options):
    """Branch s, gate BatchNorm and 2 x sigmoid gates are not in the fused kernel: on the
    fused-sca path such a module runs its eager ops (and says so through ``kernel_ok``)."""
    calls = []
    monkeypatch.setattr(sca_kernel, "forward", lambda *a, **k: calls.append(1))
    module = random_sca(16, **options)
    assert module.fused and not module.kernel_ok
    x = torch.randn(2, 16, 6, 6)
    with torch.inference_mode():
        torch.testing.assert_close(module(x), module.forward_eager(x))
    assert not calls
