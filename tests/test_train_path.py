"""Training paths: the fast path trains like eager, one path per study, recorded and reported,
an honest fallback where the CPU lacks bf16, and exact resume on the fast path."""

from __future__ import annotations

import dataclasses
import shutil

import pytest
import torch

import ablation.design.train_path
from ablation.errors import ConfigError
from ablation.run.results import TrialRecord, results_table
from ablation.design.space import parse_space
from ablation.run.train import TrainStep, as_config, run_trial
from ablation.design.train_path import TRAIN_PATHS, train_setup

TINY = dict(
    backbone="resnet20",
    dataset="synthetic:size=8,channels=1,classes=4,train=256,val=128",
    epochs=2,
    batch_size=32,
    lr=0.05,
    latency_runs=1,
    device="cpu",
    threads=1,
)
TIMING_KEYS = {"epoch_time_s", "images_per_s", "latency_ms", "compile_time_s"}
#: Largest relative difference allowed between the fast path's and eager's loss at each of the
#: first steps: bf16 keeps 8 bits of mantissa (~0.4% per rounding), accumulated over 20 layers.
LOSS_RTOL = 0.03
CPU = torch.device("cpu")


def _steps(path: str, steps: int = 6) -> list[float]:
    """Losses of the first ``steps`` optimiser steps of the tiny model on ``path`` (same init, same batches)."""
    from ablation.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet20", num_classes=4, in_channels=1, small_input=True)
    step = TrainStep(model, as_config(dict(TINY, train_path=path)), CPU, total_steps=steps, warmup_steps=2)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(steps, 32, 1, 8, 8, generator=gen), torch.randint(0, 4, (steps, 32), generator=gen)
    return [float(step.train(*step.inputs(x[i], y[i]))) for i in range(steps)]


@pytest.mark.slow
def test_fast_path_follows_the_eager_loss_curve(bf16):
    eager, fast = _steps("eager"), _steps("fast")
    assert eager[-1] < eager[0]  # it learns, so the curve is a curve
    for i, (a, b) in enumerate(zip(eager, fast)):
        assert abs(a - b) <= LOSS_RTOL * a, f"step {i}: eager {a:.4f}, fast {b:.4f}"
    assert eager != fast  # bf16 really ran: the curves are close, not identical


def test_setup_of_each_path(monkeypatch):
    monkeypatch.setattr(ablation.design.train_path, "cpu_has_native_bf16", lambda: True)
    eager, fast = train_setup("eager", CPU), train_setup("fast", CPU)
    assert (eager.dtype, eager.channels_last, eager.compiled) == (None, False, False)
    assert (fast.dtype, fast.channels_last, fast.compiled) == (torch.bfloat16, True, True)
    assert eager.describe() == "eager: fp32, NCHW"
    assert fast.describe() == "fast: bfloat16 autocast (attention in fp32), channels_last, compiled"
    assert train_setup("fast", CPU, amp=False).dtype is None and not train_setup("fast", CPU, amp=False).fallback
    with pytest.raises(ValueError, match="eager, fast"):
        train_setup("turbo", CPU)


def test_cpu_without_bf16_falls_back_to_fp32_and_says_so(monkeypatch):
    monkeypatch.setattr(ablation.design.train_path, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    setup = train_setup("fast", CPU)
    assert setup.dtype is None and setup.channels_last and setup.compiled
    assert "fell back to fp32" in setup.fallback and "no native bf16" in setup.describe()
    monkeypatch.setattr(ablation.design.train_path, "cpu_flags", lambda: frozenset({"avx512f", "avx512_bf16"}))
    assert train_setup("fast", CPU).dtype == torch.bfloat16


@pytest.fixture
def bf16(monkeypatch):
    """bf16 on any CPU (emulated where not native): every compiled test shares one graph, so
    Inductor's cache compiles it once."""
    monkeypatch.setattr(ablation.design.train_path, "cpu_has_native_bf16", lambda: True)


@pytest.mark.slow
def test_trial_on_the_fast_path_records_setup_and_compile_time(bf16):
    result = run_trial(dict(TINY, train_path="fast"))
    first, second = result["history"]
    assert (
        first["train_setup"]
        == result["train_setup"]
        == "fast: bfloat16 autocast (attention in fp32), channels_last, compiled"
    )
    assert first["compile_time_s"] > 0 and second["compile_time_s"] == 0  # compiled once, timed apart
    assert result["compile_time_s"] == first["compile_time_s"]
    assert result["train_time_s"] == pytest.approx(first["epoch_time_s"] + second["epoch_time_s"])
    assert result["config"]["train_path"] == "fast" and result["top1"] > 25


@pytest.mark.slow
def test_resume_on_the_fast_path_ends_like_an_uninterrupted_run(tmp_path, bf16, monkeypatch):
    cfg = dict(TINY, epochs=3, train_path="fast")

    def keep_epoch_1(metrics, checkpoint_dir):
        if metrics["epoch"] == 1:
            shutil.copytree(checkpoint_dir, tmp_path / "epoch1")

    full = run_trial(cfg, report=keep_epoch_1)
    resumed = run_trial(cfg, resume_from=str(tmp_path / "epoch1"))

    def strip(history):
        return [{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in history]

    assert strip(resumed["history"]) == strip(full["history"])
    with pytest.raises(ConfigError, match="train_path"):
        run_trial(dict(cfg, train_path="eager"), resume_from=str(tmp_path / "epoch1"))
    # epoch 1 trained in bf16: a machine without it must not train epochs 2-3 in its fp32 fallback
    monkeypatch.setattr(ablation.design.train_path, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(ConfigError, match="trained as 'fast: bfloat16 .* gives 'fast: fp32"):
        run_trial(cfg, resume_from=str(tmp_path / "epoch1"))


def _space(**sections):
    """A two-module, two-seed space with ``sections`` set or replaced."""
    return parse_space(
        {
            "name": "paths",
            "base": {"dataset": "digits"},
            "budget": {"epochs": 1},
            "grid": {"attention": ["none", "sca"], "seed": [0, 1]},
            **sections,
        }
    )


def test_every_variant_of_a_study_trains_on_its_path():
    assert {c.train_path for c in _space().configs()} == {"eager"}  # the default: unchanged
    space = _space(train={"path": "fast"})
    assert len(space.configs()) == 4 and {c.train_path for c in space.configs()} == {"fast"}
    assert "train_path" not in space.varying_keys()


def test_a_parity_study_trains_every_variant_on_each_path():
    space = _space(train={"path": ["eager", "fast"]})
    configs = space.configs()
    assert len(configs) == 8 and "train_path" in space.varying_keys()
    for path in TRAIN_PATHS:
        assert sorted((c.attention, c.seed) for c in configs if c.train_path == path) == [
            ("none", 0),
            ("none", 1),
            ("sca", 0),
            ("sca", 1),
        ]


@pytest.mark.parametrize(
    "sections, message",
    [
        ({"train": {"path": "turbo"}}, "train.path"),
        ({"train": {"path": ["eager", "eager"]}}, "distinct"),
        ({"train": {"speed": "fast"}}, "train.speed: unknown key"),
        ({"grid": {"attention": ["none"], "train_path": ["fast"]}}, "set it in train.path"),
    ],
)
def test_bad_training_path_names_the_key_and_the_allowed_values(sections, message):
    with pytest.raises(ConfigError, match=message) as caught:
        _space(**sections)
    if "turbo" in str(sections):
        assert "eager" in str(caught.value) and "fast" in str(caught.value)


def test_the_path_is_in_results_and_the_report():
    from ablation.analysis.report import training_note

    history = [
        {
            "epoch": 1,
            "top1": 50.0,
            "epoch_time_s": 2.0,
            "compile_time_s": 30.0,
            "train_setup": "fast: bfloat16 autocast, channels_last, compiled",
        }
    ]
    records = [
        TrialRecord(
            f"t{i}",
            as_config(dict(TINY, epochs=1, train_path="fast", seed=i)).model_dump(),
            "completed",
            history=history,
        )
        for i in range(2)
    ]
    table = results_table(records)
    assert list(table["train_path"]) == ["fast", "fast"]
    assert list(table["train_setup"]) == ["fast: bfloat16 autocast, channels_last, compiled"] * 2
    assert list(table["compile_time_s"]) == [30.0, 30.0] and list(table["train_time_s"]) == [2.0, 2.0]
    note = training_note(table)
    assert note.startswith("Training path: fast, channels_last") and "(2 trials)" in note
    assert "Compilation took 30 s per trial" in note
    parity = table.assign(train_path=["eager", "fast"])
    assert training_note(parity).startswith("Parity study") and "eager (" in training_note(parity)
    assert "before training paths were recorded" in training_note(table.drop(columns=["train_path"]))


@pytest.mark.parametrize("attention", ["sca", "se", "eca", "cbam", "coord", "triplet"])
def test_under_the_fast_paths_autocast_every_attention_module_runs_in_fp32(attention):
    """The fast path's bf16 autocast leaves every attention module in fp32 (its input cast up, its
    output back to the input's dtype), the same for every module; the backbone stays in bf16."""
    from ablation.models import build_model
    from ablation.design.train_path import attention_in_fp32

    torch.manual_seed(0)
    model = build_model("mobilenet_v2", attention, num_classes=4, in_channels=1, small_input=True, width_mult=0.5)
    keys = list(model.state_dict())
    attention_modules = [m for m in model.modules() if getattr(m, "is_ablation_attention", False)]
    kinds = {type(m) for m in attention_modules}
    assert attention_modules and attention_in_fp32(model) == len(attention_modules)
    assert attention_in_fp32(model) == 0  # once is enough
    assert list(model.state_dict()) == keys and all(isinstance(m, tuple(kinds)) for m in attention_modules)
    seen: dict[str, set] = {"inside": set(), "in": set(), "out": set(), "conv": set()}

    def inside(module, args):  # the layers inside each attention module see what its forward passed on
        seen["inside"].add(args[0].dtype)

    def around(module, args, out):
        seen["in"].add(args[0].dtype)
        seen["out"].add(out.dtype)

    def backbone(module, args, out):
        seen["conv"].add(out.dtype)

    for m in attention_modules:
        m.register_forward_hook(around)
        for child in m.modules():
            if isinstance(child, (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Linear)):
                child.register_forward_pre_hook(inside)
    next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d)).register_forward_hook(backbone)
    x = torch.randn(2, 1, 16, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    assert seen["inside"] == {torch.float32} and seen["conv"] == {torch.bfloat16}
    assert seen["in"] == seen["out"] == {torch.bfloat16}
    seen["inside"].clear()
    model(x)  # without an autocast: plain fp32, as before
    assert seen["inside"] == {torch.float32}


def test_the_fast_path_keeps_attention_in_fp32_where_it_lowers_precision(monkeypatch):
    import copy

    from ablation.models import build_model

    monkeypatch.setattr(ablation.design.train_path, "cpu_has_native_bf16", lambda: True)
    assert train_setup("fast", CPU).attention_fp32 and not train_setup("fast", CPU, amp=False).attention_fp32
    assert not train_setup("eager", CPU).attention_fp32
    model = build_model("resnet20", "sca", num_classes=4, in_channels=1, small_input=True)
    setup = dataclasses.replace(train_setup("fast", CPU), compiled=False)
    TrainStep(model, as_config(dict(TINY, attention="sca", train_path="fast")), CPU, 10, 2, setup=setup)
    fp32 = [m for m in model.modules() if getattr(m, "fp32_attention", False)]
    assert fp32 and all(
        getattr(m, "fp32_attention", False)
        for m in copy.deepcopy(model).modules()
        if getattr(m, "is_ablation_attention", False)
    )
    eager = build_model("resnet20", "sca", num_classes=4, in_channels=1, small_input=True)
    TrainStep(eager, as_config(dict(TINY, attention="sca")), CPU, 10, 2)
    assert not any(getattr(m, "fp32_attention", False) for m in eager.modules())
