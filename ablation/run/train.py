"""Train and evaluate one trial: ``run_trial(config, report) -> result dict``.

SGD with Nesterov momentum, a per-step cosine schedule after a linear warm-up, optional label
smoothing and no weight decay on norm and bias parameters. Seeded: on the CPU the same config
gives the same metrics, and a run resumed from any epoch's checkpoint ends exactly like an
uninterrupted one (on the ``fast`` path: on the same machine). Precision, memory format and
compilation follow the study's training path (``ablation.design.train_path``): ``eager`` trains in fp32
NCHW on the CPU and with mixed precision (bf16, else fp16 with a gradient scaler) and
channels_last on CUDA; ``fast`` adds channels_last and native bf16 on the CPU and
``torch.compile`` everywhere.
"""

from __future__ import annotations

import math
import tempfile
import time
from functools import partial
from typing import Any, Callable, Optional, Union

import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn

from .checkpoint import load_checkpoint, rng_state, save_checkpoint, set_rng_state
from ..design.config import TrialConfig
from ..data import DataBundle, build_data
from ..errors import ConfigError, NonFiniteLossError
from ..design.train_path import TrainSetup, attention_in_fp32, check_same_setup, train_setup

#: Per-epoch training metrics (then the cost figures), in report order.
METRIC_KEYS: tuple[str, ...] = (
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
)

#: Cost figures from ``profile_model`` carried in every epoch's metrics.
COST_KEYS: tuple[str, ...] = (
    "params",
    "flops",
    "flops_convfc",
    "attention_params",
    "attention_flops",
    "latency_ms",
    "uncounted_ops",
)

#: Test-split figures, in the last epoch's metrics only (evaluated once, when training ends).
TEST_KEYS: tuple[str, ...] = ("test_loss", "test_top1", "test_top5")

#: The task's shape and split sizes, carried in every epoch's metrics (with ``provenance.PROVENANCE_KEYS``).
DATA_KEYS: tuple[str, ...] = ("num_classes", "in_channels", "input_size", "train_images", "val_images", "test_images")

#: Config keys that may differ between a checkpoint and the run resuming it.
EXECUTION_KEYS: frozenset[str] = frozenset(
    {"device", "threads", "workers", "data_dir", "download", "latency_runs", "latency_batch", "latency_path"}
)

Report = Callable[[dict, str], None]
Progress = Callable[[int, int, int], None]


def as_config(config: Union[TrialConfig, dict]) -> TrialConfig:
    """A ``TrialConfig`` from a config or a dict of its fields (bad fields: ``ConfigError``)."""
    if isinstance(config, TrialConfig):
        return config
    try:
        return TrialConfig(**config)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'config'}: {e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        )
        raise ConfigError(f"invalid trial config: {problems}") from None


def resolve_device(name: str) -> torch.device:
    """``auto`` means CUDA where available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device {name!r} is not a torch device; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {name!r}: CUDA is not available on this machine; use auto or cpu")
    return device


def lr_factor(step: int, warmup_steps: int, total_steps: int) -> float:
    """Multiplier of the base lr at optimizer step ``step``: linear warm-up, then cosine to 0."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on conv/linear weights only; none on norm parameters and biases (1-d)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]


class TrainStep:
    """One trial's model, optimiser and training path (``setup``: the path's, unless given, e.g.
    by a benchmark): a training step and an evaluation.

    On a compiled path the first training step compiles; its time goes to ``compile_time_s``
    (taken out of the epoch's time and images/s by :func:`train_epoch`)."""

    def __init__(
        self,
        model: nn.Module,
        cfg: TrialConfig,
        device: torch.device,
        total_steps: int,
        warmup_steps: int,
        setup: Optional[TrainSetup] = None,
    ) -> None:
        self.model, self.device = model, device
        self.setup = setup or train_setup(cfg.train_path, device, cfg.amp, cfg.channels_last)
        self.dtype = self.setup.dtype
        self.memory_format = torch.channels_last if self.setup.channels_last else torch.contiguous_format
        # Module.to takes device and memory_format together; torch's overloads list them apart.
        self.model.to(device=device, memory_format=self.memory_format)  # type: ignore[call-overload]
        if self.setup.attention_fp32 and self.dtype is not None:
            attention_in_fp32(model)
        self.runner: Callable[[torch.Tensor], torch.Tensor] = (
            torch.compile(model, mode="reduce-overhead" if self.setup.cuda_graphs else None)
            if self.setup.compiled
            else model
        )
        self.compile_pending = self.setup.compiled
        self.label_smoothing = cfg.label_smoothing
        self.optimizer = torch.optim.SGD(
            param_groups(model, cfg.weight_decay),
            lr=cfg.lr,
            momentum=cfg.momentum,
            nesterov=cfg.nesterov and cfg.momentum > 0,
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, partial(lr_factor, warmup_steps=warmup_steps, total_steps=total_steps)
        )
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)

    def inputs(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.to(self.device, non_blocking=True).contiguous(memory_format=self.memory_format)
        return x, y.to(self.device, non_blocking=True)

    def forward(self, x: torch.Tensor, runner: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> torch.Tensor:
        """Logits of ``x`` under the path's autocast, by ``runner`` (default: the eager model)."""
        with torch.autocast(self.device.type, dtype=self.dtype, enabled=self.dtype is not None):
            return (self.model if runner is None else runner)(x)

    def train(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """One optimiser step; returns the (detached) batch loss."""
        if self.setup.cuda_graphs:  # a new step: the graphs may reuse the last step's outputs' memory
            torch.compiler.cudagraph_mark_step_begin()
        loss = F.cross_entropy(self.forward(x, self.runner).float(), y, label_smoothing=self.label_smoothing)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])


def _check_finite(losses: torch.Tensor, first_step: int, epoch: int) -> None:
    bad = (~torch.isfinite(losses)).nonzero()
    if len(bad):
        step = first_step + int(bad[0])
        raise NonFiniteLossError(
            f"non-finite training loss ({losses[int(bad[0])].item()}) at epoch {epoch}, step {step}; "
            f"lower lr (or warm up longer) and check the data"
        )


def train_epoch(step: TrainStep, loader: Any, epoch: int, progress: Optional[Progress] = None) -> dict[str, float]:
    """Train one epoch (``lr``: the last step's); the loss is checked every step on the CPU, every 50 on a GPU (sync cost)."""
    step.model.train()
    loader.set_epoch(epoch)
    n_steps = len(loader)
    check_every = 1 if step.device.type == "cpu" else 50
    losses = torch.zeros(n_steps, device=step.device)
    seen, checked, lr, compile_s = 0, 0, float("nan"), 0.0
    start = time.perf_counter()
    for i, (x, y) in enumerate(loader):
        x, y = step.inputs(x, y)
        lr = step.optimizer.param_groups[0]["lr"]
        if step.compile_pending:  # this step compiles: its time (and images) are not training speed
            began = time.perf_counter()
            losses[i] = step.train(x, y)
            _sync(step.device)
            compile_s, step.compile_pending = time.perf_counter() - began, False
        else:
            losses[i] = step.train(x, y)
            seen += len(y)
        if i + 1 - checked >= check_every or i + 1 == n_steps:
            _check_finite(losses[checked : i + 1], checked + 1, epoch)
            checked = i + 1
        if progress is not None:
            progress(epoch, i + 1, n_steps)
    seconds = time.perf_counter() - start - compile_s
    return {
        "train_loss": losses.mean().item() if n_steps else float("nan"),
        "images_per_s": seen / seconds if seconds > 0 else 0.0,
        "lr": lr,
        "compile_time_s": compile_s,
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.inference_mode()
def evaluate(step: TrainStep, loader: Any) -> dict[str, float]:
    """Loss (plain cross-entropy, no smoothing) and top-1/top-5 accuracy in percent on ``loader``
    (keys ``val_*``; :func:`test_metrics` renames them for the test split)."""
    step.model.eval()
    totals = torch.zeros(3, device=step.device, dtype=torch.float64)
    n = 0
    for x, y in loader:
        x, y = step.inputs(x, y)
        logits = step.forward(x).float()
        correct = logits.topk(min(5, logits.shape[1]), dim=1).indices == y[:, None]
        totals += torch.stack(
            [F.cross_entropy(logits, y, reduction="sum"), correct[:, 0].sum(), correct.any(dim=1).sum()]
        ).double()
        n += len(y)
    loss, top1, top5 = (totals / max(n, 1)).tolist()
    return {"val_loss": loss, "top1": 100 * top1, "top5": 100 * top5}


def test_metrics(step: TrainStep, data: DataBundle, last: dict[str, float]) -> dict[str, float]:
    """The test split's loss, top-1 and top-5 when training ends; without a validation split the
    test split is what ``last`` (the final epoch's evaluation) already measured."""
    scores = last if data.test is data.val else evaluate(step, data.test)
    return {"test_loss": scores["val_loss"], "test_top1": scores["top1"], "test_top5": scores["top5"]}


def data_figures(data: DataBundle) -> dict[str, int]:
    """The task's shape and the number of images in each split."""
    return {
        "num_classes": data.num_classes,
        "in_channels": data.in_channels,
        "input_size": data.input_size,
        **{f"{split}_images": getattr(data, split).num_images for split in ("train", "val", "test")},
    }


def measure_cost(model: nn.Module, cfg: TrialConfig, data: DataBundle, device: torch.device) -> dict[str, float]:
    """Params, FLOPs and latency (on ``cfg.latency_path``) of the model at the trained input size."""
    from .profile import profile_model

    report = profile_model(
        model,
        data.input_size,
        data.in_channels,
        batch_size=cfg.latency_batch,
        runs=cfg.latency_runs,
        device=str(device),
        threads=cfg.threads,
        path=cfg.latency_path,
    )
    cost = report.as_dict()
    return {k: cost[k] for k in COST_KEYS}


def _check_resumable(cfg: TrialConfig, saved: dict) -> None:
    now = cfg.model_dump()
    diff = sorted(k for k in now if k not in EXECUTION_KEYS and now[k] != saved.get(k))
    if diff:
        raise ConfigError(
            f"resume_from: the checkpoint was made with different {diff}; "
            f"only {sorted(EXECUTION_KEYS)} may change on resume"
        )


def _saved_setup(saved: dict) -> str:
    """The setup a checkpoint's epochs trained with: its ``train_setup``, else (checkpoints made
    before it was kept) the last epoch's metrics' one, else ``""`` (made before either)."""
    history = saved.get("history") or [{}]
    return str(saved.get("train_setup") or history[-1].get("train_setup") or "")


def run_trial(
    config: Union[TrialConfig, dict],
    report: Optional[Report] = None,
    resume_from: Optional[str] = None,
    *,
    progress: Optional[Progress] = None,
) -> dict:
    """Build, profile, train and evaluate one config; see docs/contracts.md for the dicts.

    ``report(metrics, checkpoint_dir)`` is called after every epoch (the directory lives until
    it returns); ``resume_from`` is such a directory; ``progress(epoch, step, steps)`` is called
    after every training step (the CLI draws its progress bar with it).
    """
    from ..models import build_model
    from ..provenance import environment

    cfg = as_config(config)
    device = resolve_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    torch.manual_seed(cfg.seed)
    data = build_data(
        cfg.dataset,
        cfg.data_dir,
        batch_size=cfg.batch_size,
        workers=cfg.workers,
        subset=cfg.subset,
        seed=cfg.seed,
        download=cfg.download,
        val_split=cfg.val_split,
        eval_subset=cfg.eval_subset,
    )
    for loader in {id(x): x for x in (data.train, data.val, data.test)}.values():
        if hasattr(loader, "to"):
            loader.to(device)
    small_input = cfg.small_input if cfg.small_input is not None else data.input_size <= 64
    model = build_model(
        cfg.backbone,
        cfg.attention,
        cfg.position,
        cfg.stages,
        num_classes=data.num_classes,
        in_channels=data.in_channels,
        small_input=small_input,
        width_mult=cfg.width_mult,
        **cfg.attention_kwargs(),
    )

    saved = load_checkpoint(resume_from) if resume_from else None
    if saved is not None:
        _check_resumable(cfg, saved["config"])
    cost = saved["cost"] if saved else measure_cost(model, cfg, data, device)
    about = data_figures(data) | environment(device)
    steps = len(data.train)
    step = TrainStep(model, cfg, device, total_steps=steps * cfg.epochs, warmup_steps=round(cfg.warmup_epochs * steps))
    history: list[dict] = []
    if saved is not None:
        recorded = _saved_setup(saved)
        if recorded:  # checkpoints made before setups were recorded restore as before
            check_same_setup(f"resume_from {resume_from}", [recorded], [step.setup.describe()])
        step.load_state_dict(saved["state"])
        set_rng_state(saved["rng"])
        history = list(saved["history"])

    for epoch in range(len(history) + 1, cfg.epochs + 1):
        start = time.perf_counter()
        metrics: dict[str, Any] = {
            "epoch": epoch,
            **train_epoch(step, data.train, epoch, progress),
            **evaluate(step, data.val),
        }
        metrics["epoch_time_s"] = time.perf_counter() - start - metrics["compile_time_s"]
        metrics["train_setup"] = step.setup.describe()
        metrics = {k: metrics[k] for k in METRIC_KEYS} | cost | about
        if epoch == cfg.epochs:
            metrics |= test_metrics(step, data, metrics)
        history.append(metrics)
        if report is not None:
            with tempfile.TemporaryDirectory(prefix="ablation-ckpt-") as ckpt:
                save_checkpoint(
                    ckpt,
                    {
                        "config": cfg.model_dump(),
                        "cost": cost,
                        "history": history,
                        "state": step.state_dict(),
                        "rng": rng_state(),
                        "train_setup": step.setup.describe(),
                    },
                )
                report(dict(metrics), ckpt)
    return trial_result(cfg, history)


def trial_result(cfg: TrialConfig, history: list[dict]) -> dict:
    """The contract's result: the last epoch's metrics plus the best (validation) epoch and the history."""
    best = max(history, key=lambda m: m["top1"])
    return {
        **history[-1],
        "best_top1": best["top1"],
        "best_epoch": best["epoch"],
        "epochs_done": len(history),
        "train_time_s": sum(m["epoch_time_s"] for m in history),
        "compile_time_s": sum(m.get("compile_time_s", 0.0) for m in history),
        "history": [dict(m) for m in history],
        "config": cfg.model_dump(),
    }
