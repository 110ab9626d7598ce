"""A study trains one way throughout: a resume on hardware that gives another setup is refused
(the driver, before any work), a checkpoint refuses to restore under another setup (the trial),
and a study that mixes setups anyway says so in its report."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import ablation.design.train_path
from ablation.analysis.report import training_note
from ablation.cli import main
from ablation.design.space import parse_space
from ablation.design.train_path import train_setup
from ablation.errors import ConfigError
from ablation.run.checkpoint import load_checkpoint, save_checkpoint
from ablation.run.results import TrialRecord, results_table, write_results
from ablation.run.sweep import check_train_setups
from ablation.run.train import as_config, run_trial

CPU = torch.device("cpu")
TINY = dict(
    backbone="resnet20",
    dataset="synthetic:size=8,channels=1,classes=4,train=64,val=32",
    epochs=2,
    batch_size=32,
    lr=0.05,
    latency_runs=1,
    device="cpu",
    threads=1,
)
#: A space's base and budget for ``TINY``'s trials (epochs are the budget's).
BASE = {k: v for k, v in TINY.items() if k != "epochs"}
BUDGET = {"epochs": TINY["epochs"]}


def _native_bf16(monkeypatch, native: bool) -> str:
    """Make this CPU one with (AVX512-BF16) or without (AVX2 only) native bf16; returns the fast
    path's setup on it."""
    flags = {"avx2", "avx512_bf16"} if native else {"avx2"}
    monkeypatch.setattr(ablation.design.train_path, "cpu_flags", lambda: frozenset(flags))
    return train_setup("fast", CPU).describe()


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.md5(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


def _no_ray(*args, **kwargs):
    raise AssertionError("the resume went on to start Ray")


# --- 1. the driver refuses a resume on hardware that gives another setup ---


def _recorded_study(tmp_path: Path, setup: str) -> tuple[Path, Path]:
    """A space file on the fast path and its run directory, whose results.csv records two trials
    that ran with ``setup`` and one that has not started."""
    spec = {"name": "guarded", "base": BASE, "budget": BUDGET, "train": {"path": "fast"}, "grid": {"seed": [0, 1, 2]}}
    space_file = tmp_path / "guarded.yaml"
    space_file.write_text(yaml.safe_dump(spec))
    configs = parse_space(spec).configs()
    history = [{"epoch": 1, "top1": 40.0, "train_setup": setup}]
    records = [TrialRecord(f"t{i}", c.model_dump(), "pending", history=history) for i, c in enumerate(configs[:2])]
    records.append(TrialRecord("t2", configs[2].model_dump(), "pending"))
    run_dir = tmp_path / "runs" / "guarded"
    run_dir.mkdir(parents=True)
    write_results(run_dir, records)
    return space_file, run_dir


def test_resume_on_hardware_without_the_recorded_bf16_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    bf16 = _native_bf16(monkeypatch, True)
    space_file, run_dir = _recorded_study(tmp_path, bf16)
    fp32 = _native_bf16(monkeypatch, False)
    assert "fell back to fp32" in fp32 and bf16 != fp32
    before = _snapshot(run_dir)
    monkeypatch.setattr("ablation.run.sweep.connect", _no_ray)  # a missed refusal fails here, not in a sweep
    assert main(["sweep", str(space_file), "--storage", str(tmp_path / "runs"), "--resume"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(run_dir) in err and "train path fast" in err and repr(bf16) in err and repr(fp32) in err
    assert _snapshot(run_dir) == before  # nothing in the run directory changed


def test_resume_on_hardware_giving_the_recorded_setup_goes_on(tmp_path, monkeypatch):
    bf16 = _native_bf16(monkeypatch, True)
    space_file, run_dir = _recorded_study(tmp_path, bf16)
    space = parse_space(yaml.safe_load(space_file.read_text()))
    check_train_setups(run_dir, space)  # the same hardware: no error
    (run_dir / "results.csv").unlink()
    _native_bf16(monkeypatch, False)
    check_train_setups(run_dir, space)  # nothing recorded yet: nothing to keep consistent


def test_a_parity_study_checks_each_path_against_its_own_trials(tmp_path, monkeypatch):
    bf16 = _native_bf16(monkeypatch, True)
    spec = {
        "name": "parity",
        "base": BASE,
        "budget": BUDGET,
        "train": {"path": ["eager", "fast"]},
        "grid": {"seed": [0]},
    }
    space = parse_space(spec)
    records = [
        TrialRecord(c.train_path, c.model_dump(), "completed", history=[{"epoch": 1, "top1": 1.0, "train_setup": s}])
        for c, s in zip(space.configs(), ["eager: fp32, NCHW", bf16])
    ]
    write_results(tmp_path, records)
    check_train_setups(tmp_path, space)
    _native_bf16(monkeypatch, False)
    with pytest.raises(ConfigError, match="train path fast") as caught:
        check_train_setups(tmp_path, space)
    assert "train path eager" not in str(caught.value)


# --- 2. a checkpoint remembers its setup ---


def _checkpoint(tmp_path: Path, cfg: dict) -> Path:
    """The checkpoint of ``cfg``'s first epoch."""

    def keep_epoch_1(metrics, checkpoint_dir):
        if metrics["epoch"] == 1:
            shutil.copytree(checkpoint_dir, tmp_path / "epoch1")

    run_trial(cfg, report=keep_epoch_1)
    return tmp_path / "epoch1"


def test_a_checkpoint_made_with_bf16_refuses_to_restore_in_the_fp32_fallback(tmp_path, monkeypatch):
    ckpt = _checkpoint(tmp_path, TINY)
    saved = load_checkpoint(ckpt)
    assert saved["train_setup"] == "eager: fp32, NCHW"  # what the epochs trained with, kept
    # The same checkpoint as a fast-path trial made on a CPU with native bf16 would have written it.
    bf16 = _native_bf16(monkeypatch, True)
    saved["config"] = as_config(dict(TINY, train_path="fast")).model_dump()
    saved["train_setup"] = bf16
    save_checkpoint(ckpt, saved)
    fp32 = _native_bf16(monkeypatch, False)
    with pytest.raises(ConfigError) as caught:
        run_trial(dict(TINY, train_path="fast"), resume_from=str(ckpt))
    assert str(ckpt) in str(caught.value) and repr(bf16) in str(caught.value) and repr(fp32) in str(caught.value)
    # A checkpoint from before the key was kept: the last epoch's recorded setup speaks for it.
    del saved["train_setup"]
    saved["history"][-1]["train_setup"] = bf16
    save_checkpoint(ckpt, saved)
    with pytest.raises(ConfigError, match="fell back to fp32"):
        run_trial(dict(TINY, train_path="fast"), resume_from=str(ckpt))


def test_a_checkpoint_without_a_recorded_setup_restores_as_before(tmp_path):
    ckpt = _checkpoint(tmp_path, TINY)
    saved = load_checkpoint(ckpt)
    del saved["train_setup"]
    for epoch in saved["history"]:
        del epoch["train_setup"]
    save_checkpoint(ckpt, saved)
    result = run_trial(TINY, resume_from=str(ckpt))
    assert result["epochs_done"] == 2 and result["train_setup"] == "eager: fp32, NCHW"


# --- 3. a study that mixes setups says so ---


def test_the_report_warns_when_one_paths_trials_mixed_setups(monkeypatch):
    bf16, fp32 = _native_bf16(monkeypatch, True), _native_bf16(monkeypatch, False)
    cfg = as_config(dict(TINY, train_path="fast")).model_dump()

    def table(setups):
        return results_table(
            TrialRecord(f"t{i}", dict(cfg, seed=i), "completed", history=[{"epoch": 1, "top1": 1.0, "train_setup": s}])
            for i, s in enumerate(setups)
        )

    note = training_note(table([bf16] * 3 + [fp32] * 2))
    assert "Warning: the fast-path trials did not all train the same way" in note
    assert f"3 as {bf16}" in note and f"2 as {fp32}" in note
    assert "Warning" not in training_note(table([bf16] * 3))
    parity = table([bf16, fp32, "eager: fp32, NCHW"]).assign(train_path=["fast", "eager", "eager"])
    assert "Warning: the eager-path trials" in training_note(parity)
    assert "fast-path" not in training_note(parity)
