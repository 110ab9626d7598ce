"""Tiny search spaces and scriptable fake trials for sweeps on a real local Ray.

The fakes keep ``run_trial``'s contract (``(config, report, resume_from) -> dict``) and are
pickled by value into Ray's workers; they append every epoch they run to ``$FAKE_TRIAL_LOG``
so that tests can prove what ran, and how often.
"""

from __future__ import annotations

import json
import os
import random
import signal
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch
from ray.tune.search import Searcher

from ablation.provenance import environment
from ablation.design.space import parse_space, trial_config
from ablation.run.seed_search import SeedSearcher

TINY_DATA = "synthetic:size=8,channels=1,classes=2,train=64,val=32"
TINY_BASE = {
    "dataset": TINY_DATA,
    "backbone": "resnet20",
    "batch_size": 32,
    "latency_runs": 1,
    "device": "cpu",
    "threads": 1,
}


def space(name: str, grid=None, sample=None, **budget) -> "object":
    data = {
        "name": name,
        "base": dict(TINY_BASE),
        "budget": {"epochs": 2, "max_failures": 0, **budget},
        "resources": {"cpu": 1},
    }
    data.update({"grid": grid} if grid is not None else {"sample": sample})
    return parse_space(data)


def log_line(text: str) -> None:
    with open(os.environ["FAKE_TRIAL_LOG"], "a") as f:
        f.write(text + "\n")


def _hold(cfg, epoch: int) -> None:
    """The trial with ``seed == 2`` pauses at epoch 2 while ``$FAKE_TRIAL_PAUSE`` names a file
    that does not exist yet (it creates it): until ``$FAKE_TRIAL_RELEASE`` exists where that is
    set, else for 120 s (long enough to be killed)."""
    pause = os.environ.get("FAKE_TRIAL_PAUSE")
    if not (pause and cfg.seed == 2 and epoch == 2 and not os.path.exists(pause)):
        return
    Path(pause).write_text("paused")
    release = os.environ.get("FAKE_TRIAL_RELEASE")
    deadline = time.time() + 120
    while time.time() < deadline and not (release and os.path.exists(release)):
        time.sleep(0.2)


def kill_when_paused(command: list[str], env: dict[str, str], paused: Path) -> None:
    """Start a sweep driver and SIGKILL it (its whole process group) once a trial is held by
    :func:`_hold` (``paused`` exists, ``$FAKE_TRIAL_PAUSE`` in ``env``) and Tune has saved its state."""
    import subprocess

    proc = subprocess.Popen(command, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 300
        while not paused.exists():
            assert proc.poll() is None, proc.stderr.read().decode()[-3000:] if proc.stderr else ""
            assert time.time() < deadline, "the sweep never reached seed 2"
            time.sleep(0.3)
        time.sleep(3)  # Tune snapshots its state every second
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def fake_trial(cfg, report=None, resume_from=None):
    """Cheap and scriptable through its config: ``lr`` > 1 raises; ``kernel_size`` lowers top1
    (so ASHA has losers); see :func:`_hold` for the pause."""
    return _fake(cfg, report, resume_from, lambda epoch: 90.0 - 10 * (cfg.kernel_size or 0) + epoch + cfg.lr)


#: kernel_size -> true effect on noisy_trial's top-1 (points): none at 3, -8 at 5, +8 at 7.
NOISY_EFFECT = {None: 0.0, 3: 0.0, 5: -8.0, 7: 8.0}


def noisy_top1(cfg, epoch: int) -> float:
    """80 + the kernel size's effect + seed noise (sd 1, fixed by variant and seed) + epoch."""
    noise = random.Random(f"{cfg.attention}-{cfg.kernel_size}-{cfg.seed}").gauss(0.0, 1.0)
    return 80.0 + NOISY_EFFECT[cfg.kernel_size] + noise + epoch


def noisy_trial(cfg, report=None, resume_from=None):
    """:func:`fake_trial` whose top-1 (and test top-1) has seed noise: for seed budgets."""
    return _fake(cfg, report, resume_from, lambda epoch: noisy_top1(cfg, epoch), test=True)


def _fake(cfg, report, resume_from, top1, test: bool = False):
    start = json.loads(Path(resume_from, "state.json").read_text())["epoch"] if resume_from else 0
    history = []
    for epoch in range(start + 1, cfg.epochs + 1):
        _hold(cfg, epoch)
        if cfg.lr > 1:
            log_line(f"fail {cfg.seed} {epoch}")
            raise RuntimeError(f"diverged with lr={cfg.lr}")
        metrics = {
            "epoch": epoch,
            "train_loss": 1.0 / epoch,
            "val_loss": 1.0 / epoch,
            "top1": top1(epoch),
            "top5": 100.0,
            "epoch_time_s": 0.01,
            "images_per_s": 1000.0,
            "lr": cfg.lr,
            "params": 1,
            "flops": 1,
            "attention_params": 0,
            "attention_flops": 0,
            "latency_ms": 0.1,
            **environment(torch.device("cpu")),
        }
        if test and epoch == cfg.epochs:
            metrics |= {"test_top1": top1(epoch) - 1.0, "test_top5": 100.0, "test_loss": 1.0 / epoch}
        with tempfile.TemporaryDirectory() as d:
            Path(d, "state.json").write_text(json.dumps({"epoch": epoch}))
            report(metrics, d)
        log_line(f"epoch {cfg.seed} {epoch}" + (f" {cfg.attention}-{cfg.kernel_size}" if test else ""))
        history.append(metrics)
    return {**history[-1], "history": history} if history else {}


#: seed -> how the trial dies; other seeds train normally (fake_trial).
DEATHS = {1: "sigkill", 2: "exception", 3: "oom", 4: "non-finite"}


def dying_trial(cfg, report=None, resume_from=None):
    """A trial that dies the way ``DEATHS`` says for its seed, on every attempt."""
    death = DEATHS.get(cfg.seed)
    if death is None:
        return fake_trial(cfg, report, resume_from)
    log_line(f"attempt {cfg.seed} {death}")
    if death == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if death == "exception":
        raise ValueError("bad batch in the data loader")
    if death == "oom":
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
    from ablation.run.train import run_trial

    return run_trial(cfg.model_copy(update={"lr": 1e30, "warmup_epochs": 0}), report, resume_from)


# The seed-budget procedure driven without Ray, to compare sweeps with.


def value(point: dict, epochs: int = 1) -> float:
    """What noisy_trial reports as test top-1 for this point."""
    return noisy_top1(trial_config(point), epochs) - 1.0


def drive(searcher: SeedSearcher, concurrency: int, order: str, epochs: int = 1, stop=lambda p: False) -> list[dict]:
    """Run the searcher as Tune would, ``concurrency`` trials at a time, finishing the oldest
    (fifo) or the newest (lifo) first; returns the suggested points in order."""
    live: list[tuple[str, dict]] = []
    asked = []
    while True:
        while len(live) < concurrency:
            got = searcher.suggest(f"t{len(asked)}")
            if got is None or got == Searcher.FINISHED:
                break
            live.append((f"t{len(asked)}", got["point"]))
            asked.append(got["point"])
        if not live:
            assert searcher.suggest("last") == Searcher.FINISHED
            return asked
        trial_id, point = live.pop(0 if order == "fifo" else -1)
        done = epochs - 1 if stop(point) else epochs
        searcher.on_trial_complete(trial_id, {"epoch": done, "test_top1": value(point, done)})


def procedure_pairs(space: dict, tmp_path: Path) -> list[tuple[int, int]]:
    """(kernel size, seed) of every trial the seed-budget procedure runs for ``space`` (no Ray)."""
    parsed = parse_space(space)
    asked = drive(
        SeedSearcher(parsed.points(), parsed.seed_budget.plan(), space["budget"]["epochs"], tmp_path),
        1,
        "fifo",
        epochs=space["budget"]["epochs"],
    )
    return sorted((p["kernel_size"] or 0, p["seed"]) for p in asked)


def ran_pairs(table: pd.DataFrame) -> list[tuple[int, int]]:
    """(kernel size, seed) of every trial in a results table."""
    return sorted((0 if pd.isna(k) else int(k), int(s)) for k, s in zip(table["kernel_size"], table["seed"]))
