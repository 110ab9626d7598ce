"""One trial end to end on tiny synthetic data: learning, seeding, resume, errors, CLI."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch

from ablation.cli import main
from ablation.errors import ConfigError, DataError, NonFiniteLossError
from ablation.provenance import PROVENANCE_KEYS
from ablation.run.train import DATA_KEYS, TEST_KEYS, lr_factor, param_groups, run_trial

EPOCH_KEYS = {
    "epoch",
    "train_loss",
    "val_loss",
    "top1",
    "top5",
    "epoch_time_s",
    "images_per_s",
    "lr",
    "compile_time_s",
    "train_setup",
    "params",
    "flops",
    "flops_convfc",
    "attention_params",
    "attention_flops",
    "latency_ms",
    "uncounted_ops",
    *DATA_KEYS,
    *PROVENANCE_KEYS,
}
RESULT_KEYS = (
    EPOCH_KEYS | set(TEST_KEYS) | {"best_top1", "best_epoch", "epochs_done", "train_time_s", "history", "config"}
)
TIMING_KEYS = {"epoch_time_s", "images_per_s", "latency_ms", "compile_time_s"}

TINY = dict(
    backbone="resnet20",
    dataset="synthetic:size=8,channels=1,classes=4,train=256,val=128",
    epochs=3,
    batch_size=32,
    lr=0.05,
    latency_runs=1,
    device="cpu",
    threads=1,
)


def _deterministic(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in m.items() if k not in TIMING_KEYS} for m in history]


def test_short_training_learns_and_reports_the_contract_keys():
    reports = []

    def report(metrics, checkpoint_dir):
        reports.append((metrics, sorted(p.name for p in Path(checkpoint_dir).iterdir())))

    result = run_trial(TINY, report=report)
    assert set(result) == RESULT_KEYS
    assert [m["epoch"] for m, _ in reports] == [1, 2, 3]
    assert all(files == ["checkpoint.pt"] for _, files in reports)
    assert [set(m) for m, _ in reports] == [EPOCH_KEYS, EPOCH_KEYS, EPOCH_KEYS | set(TEST_KEYS)]  # test: at the end
    hist = result["history"]
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"]
    assert result["top1"] > 50  # chance is 25%
    assert 0 <= result["top1"] <= result["top5"] == pytest.approx(100)  # 4 classes: top-5 is everything
    assert result["epochs_done"] == 3 and result["input_size"] == 8
    assert result["best_top1"] == max(m["top1"] for m in hist)
    assert hist[result["best_epoch"] - 1]["top1"] == result["best_top1"]
    assert result["params"] == sum(p.numel() for p in _tiny_model().parameters())
    assert result["config"]["dataset"] == TINY["dataset"]


def test_selection_on_a_validation_split_and_the_test_split_evaluated_at_the_end(monkeypatch):
    import ablation.run.train

    evaluated = []
    real = ablation.run.train.evaluate
    monkeypatch.setattr(
        ablation.run.train, "evaluate", lambda step, loader: evaluated.append(loader.num_images) or real(step, loader)
    )
    result = run_trial(dict(TINY, epochs=2, val_split=0.25))
    assert (result["train_images"], result["val_images"], result["test_images"]) == (192, 64, 128)
    assert evaluated == [64, 64, 128]  # every epoch on val, the test split once, when training ends
    assert result["best_top1"] == max(m["top1"] for m in result["history"])  # best epoch: by val
    assert "test_top1" not in result["history"][0] and 0 <= result["test_top1"] <= 100

    evaluated.clear()
    paper = run_trial(dict(TINY, epochs=2, val_split=0))  # paper style: the test split is also the val split
    assert evaluated == [128, 128] and paper["val_images"] == paper["test_images"] == 128
    assert (paper["test_top1"], paper["test_loss"]) == (paper["top1"], paper["val_loss"])


def _tiny_model():
    from ablation.models import build_model

    return build_model("resnet20", num_classes=4, in_channels=1, small_input=True)


def test_same_seed_same_metrics_and_other_seed_differs():
    a = run_trial(dict(TINY, epochs=2))
    b = run_trial(dict(TINY, epochs=2))
    c = run_trial(dict(TINY, epochs=2, seed=1))
    assert _deterministic(a["history"]) == _deterministic(b["history"])
    assert _deterministic(a["history"]) != _deterministic(c["history"])


def test_resume_continues_at_next_epoch_with_identical_results(tmp_path):
    def keep_epoch_1(metrics, checkpoint_dir):
        if metrics["epoch"] == 1:
            shutil.copytree(checkpoint_dir, tmp_path / "epoch1")

    full = run_trial(TINY, report=keep_epoch_1)
    epochs_after_resume = []
    resumed = run_trial(
        TINY, report=lambda m, d: epochs_after_resume.append(m["epoch"]), resume_from=str(tmp_path / "epoch1")
    )
    assert epochs_after_resume == [2, 3]
    assert _deterministic(resumed["history"]) == _deterministic(full["history"])
    assert resumed["top1"] == full["top1"] and resumed["val_loss"] == full["val_loss"]


def test_resume_refuses_a_different_variant(tmp_path):
    run_trial(dict(TINY, epochs=1), report=lambda m, d: shutil.copytree(d, tmp_path / "ck"))
    with pytest.raises(ConfigError, match="lr"):
        run_trial(dict(TINY, lr=0.01), resume_from=str(tmp_path / "ck"))
    with pytest.raises(ConfigError, match="checkpoint"):
        run_trial(TINY, resume_from=str(tmp_path / "missing"))


def test_non_finite_loss_names_epoch_and_step(monkeypatch):
    import ablation.models

    real = ablation.models.build_model

    class PoisonAfter(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model, self.calls = model, 0

        def forward(self, x):
            self.calls += self.training
            out = self.model(x)
            return out * math.nan if self.training and self.calls == 11 else out

    monkeypatch.setattr(ablation.models, "build_model", lambda *a, **k: PoisonAfter(real(*a, **k)))
    # 256 images (no validation split carved) / batch 32 = 8 steps an epoch: call 11 is epoch 2, step 3
    with pytest.raises(NonFiniteLossError, match=r"epoch 2, step 3"):
        run_trial(dict(TINY, val_split=0))


def test_missing_data_directory_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("ABLATION_DATA_DIR", raising=False)
    monkeypatch.setattr("ablation.data.sources.SYSTEM_DATA_DIR", tmp_path / "none")
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        run_trial(dict(TINY, dataset="fashion-mnist", data_dir=str(tmp_path / "nowhere")))


def test_bad_config_is_a_config_error():
    with pytest.raises(ConfigError, match="batch_size"):
        run_trial(dict(TINY, batch_size=0))
    with pytest.raises(ConfigError, match="device"):
        run_trial(dict(TINY, device="tpu"))


def test_schedule_warms_up_linearly_then_decays_by_cosine():
    factors = [lr_factor(s, warmup_steps=4, total_steps=12) for s in range(12)]
    assert factors[:4] == [0.25, 0.5, 0.75, 1.0]
    assert factors[4] == 1.0 and all(a > b for a, b in zip(factors[4:], factors[5:]))
    assert factors[8] == pytest.approx(0.5)
    assert lr_factor(0, warmup_steps=0, total_steps=10) == 1.0


def test_no_weight_decay_on_norm_and_bias():
    model = _tiny_model()
    decay, no_decay = param_groups(model, 5e-4)
    norm_and_bias = {id(p) for n, p in model.named_parameters() if "bias" in n or p.ndim == 1}
    assert decay["weight_decay"] == 5e-4 and no_decay["weight_decay"] == 0
    assert {id(p) for p in no_decay["params"]} == norm_and_bias
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_cli_trains_from_yaml_and_overrides(tmp_path, capsys):
    cfg = tmp_path / "trial.yaml"
    cfg.write_text("".join(f"{k}: {json.dumps(v)}\n" for k, v in TINY.items()))
    out = tmp_path / "result.json"
    assert main(["train", str(cfg), "epochs=1", "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert set(result) == RESULT_KEYS and result["epochs_done"] == 1
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["top1"] == result["top1"]


def test_cli_reports_bad_input_in_one_line(tmp_path, capsys):
    assert main(["train", "dataset=mnist"]) == 2
    err = capsys.readouterr().err
    assert "mnist" in err and "digits" in err and "Traceback" not in err
    assert main(["train", str(tmp_path / "none.yaml")]) == 2
