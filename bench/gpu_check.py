"""One-command GPU check: is the harness fast and correct on a GPU, and would an ImageNet trial
wait for data? Writes ``reports/benchmarks/gpu_check.md`` (at most ~8 minutes on one GPU).

1. Training throughput: ResNet-50 at 224 px on synthetic data, bf16 autocast and channels_last,
   for none and each attention module: ``run_trial``'s training images/s against a bare AMP loop
   on the same model in the same run (target: at least 0.9).
2. Eval latency of each module as a ratio to the plain net at batch 1 and 64 (CUDA synchronised,
   interleaved rounds, ``ablation.run.calibrate``).
3. A sweep of 4 trials with 0.25 GPU each, on one GPU.
3b. Trials per GPU: resnet20 on CIFAR-sized synthetic data held on the GPU, the ``fast`` training
   path (bf16, channels_last, torch.compile with CUDA graphs), as sweeps of 1, 2, 4 and 8 trials
   with 1/k GPU each: images/s per trial and in aggregate, and the aggregate's fraction of the
   GPU's measured bf16 GEMM peak (small networks leave a GPU launch-bound; several trials fill it).
4. SCA on CUDA against SCA on the CPU, forward and backward, for several readings.
5. The ImageFolder pipeline as ``search_spaces/imagenet_paper.yaml`` runs it (its worker count,
   pinned memory; workers are restarted each epoch, not persistent) on JPEGs written at
   ImageNet-like sizes: loader images/s against the GPU's ResNet-50 training images/s.

``--tiny`` runs every part small on the CPU in under a minute (a test does): the figures then
say nothing about a GPU, only that the script works.

    python bench/gpu_check.py [--tiny] [--out reports/benchmarks]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
import yaml

from ablation.run.calibrate import interleaved_rounds, summarize
from ablation.models import build_model
from ablation.run.train import run_trial

MODULES = ("none", "se", "eca", "cbam", "coord", "triplet", "sca")
SCA_READINGS = (
    {},
    {"branches": "hws", "fuse": "mean"},
    {"branches": "hws", "norm": "bn", "gate": "2sigmoid"},
    {"pool": "avgmax", "kernel_size": 5},
)


class Setup:
    """Sizes of one check: the real one on a GPU, or ``--tiny`` on the CPU."""

    def __init__(self, tiny: bool) -> None:
        self.tiny = tiny
        self.device = "cpu" if tiny or not torch.cuda.is_available() else "cuda"
        self.backbone, self.size = ("resnet20", 32) if tiny else ("resnet50", 224)
        self.batch = 16 if tiny else 128
        self.steps = 3 if tiny else 30
        self.images = 64 if tiny else 2560
        self.modules = ("none", "sca") if tiny else MODULES
        self.latency_batches = (1, 4) if tiny else (1, 64)
        self.rounds = 3 if tiny else 10
        self.jpegs = 48 if tiny else 3000
        self.trials_per_gpu = (1, 2) if tiny else (1, 2, 4, 8)
        self.packed_images = 128 if tiny else 20000
        self.packed_epochs = 2 if tiny else 3
        self.val_images = 64 if tiny else 256
        self.fractional_images = 64 if tiny else 256
        self.packed_path = "eager" if tiny else "fast"  # tiny: no compile, so the test stays short
        self.workers = 0 if tiny else _imagenet_workers()


def _imagenet_workers() -> int:
    space = yaml.safe_load((Path(__file__).parents[1] / "search_spaces" / "imagenet_paper.yaml").read_text())
    return int(space["base"]["workers"])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def bare_amp_images_per_s(s: Setup, attention: str) -> float:
    """A plain AMP training loop (bf16 autocast on CUDA, channels_last) on random GPU batches."""
    model = build_model(s.backbone, attention, num_classes=1000, small_input=s.tiny).to(s.device)
    fmt = torch.channels_last if s.device == "cuda" else torch.contiguous_format
    model = model.to(memory_format=fmt).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)
    x = torch.randn(s.batch, 3, s.size, s.size, device=s.device).contiguous(memory_format=fmt)
    y = torch.randint(0, 1000, (s.batch,), device=s.device)
    dtype = torch.bfloat16 if s.device == "cuda" else None

    def step() -> None:
        with torch.autocast(s.device, dtype=dtype, enabled=dtype is not None):
            loss = F.cross_entropy(model(x).float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(2):
        step()
    _sync(s.device)
    start = time.perf_counter()
    for _ in range(s.steps):
        step()
    _sync(s.device)
    return s.steps * s.batch / (time.perf_counter() - start)


def harness_images_per_s(s: Setup, attention: str) -> float:
    """``run_trial``'s own training images/s (its second epoch) on synthetic data of the same size."""
    dataset = f"synthetic:size={s.size},channels=3,classes=1000,train={s.images},val={s.batch}"
    result = run_trial(
        {
            "backbone": s.backbone,
            "attention": attention,
            "dataset": dataset,
            "epochs": 2,
            "batch_size": s.batch,
            "val_split": 0,
            "latency_runs": 1,
            "device": s.device,
            "small_input": s.tiny,
        }
    )
    return result["history"][-1]["images_per_s"]


def throughput(s: Setup) -> list[dict]:
    rows = []
    for attention in s.modules:
        bare, harness = bare_amp_images_per_s(s, attention), harness_images_per_s(s, attention)
        rows.append({"attention": attention, "bare img/s": bare, "run_trial img/s": harness, "ratio": harness / bare})
        print(
            f"throughput {attention:8s} bare {bare:8.1f}  run_trial {harness:8.1f}  x{harness / bare:.3f}", flush=True
        )
    return rows


def latency(s: Setup) -> list[dict]:
    models = {
        a: build_model(s.backbone, a, num_classes=1000, small_input=s.tiny).to(s.device).eval() for a in s.modules
    }
    if s.device == "cuda":
        models = {a: m.to(memory_format=torch.channels_last) for a, m in models.items()}
    rows = {a: {"attention": a} for a in s.modules}
    for batch in s.latency_batches:
        x = torch.randn(batch, 3, s.size, s.size, device=s.device)
        with torch.autocast(s.device, dtype=torch.bfloat16, enabled=s.device == "cuda"):
            records = interleaved_rounds(models, x, s.rounds, 3)
        summary = summarize(records, {a: "none" for a in s.modules}, "wall")
        for a in s.modules:
            rows[a][f"b{batch} ms"] = summary[a]["ms"]
            rows[a][f"b{batch} x plain"] = summary[a]["ratio"]
    return list(rows.values())


def fractional_sweep(s: Setup) -> dict:
    """Four trials with 0.25 GPU each (0 on the CPU), all finishing."""
    from ablation.design.space import parse_space
    from ablation.run.sweep import run_sweep

    gpu = 0.25 if s.device == "cuda" else 0
    spec = {
        "name": "gpu_check",
        "base": {
            "dataset": f"synthetic:size=32,channels=3,classes=10,train={s.fractional_images},val=64",
            "backbone": "resnet20",
            "batch_size": 64,
            "latency_runs": 1,
        },
        "grid": {"attention": ["none", "sca"], "seed": [0, 1]},
        "budget": {"epochs": 1},
        "resources": {"cpu": 1, "gpu": gpu},
        "latency": {"calibrate": False},
    }
    with tempfile.TemporaryDirectory() as storage:
        start = time.perf_counter()
        outcome = run_sweep(parse_space(spec), storage=storage, verbose=0)
        return {"gpu per trial": gpu, "counts": outcome.counts, "wall s": time.perf_counter() - start}


def bf16_peak_tflops(s: Setup) -> float:
    """Best bf16 GEMM TFLOP/s of this device (``torch.mm`` of two square matrices)."""
    n = 256 if s.tiny else 8192
    a = torch.randn(n, n, device=s.device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=s.device, dtype=torch.bfloat16)
    torch.mm(a, b)
    _sync(s.device)
    best = float("inf")
    for _ in range(3 if s.tiny else 20):
        start = time.perf_counter()
        torch.mm(a, b)
        _sync(s.device)
        best = min(best, time.perf_counter() - start)
    return 2 * n**3 / best / 1e12


def packed_trials(s: Setup) -> tuple[list[dict], float]:
    """Sweeps of k trials sharing one GPU (1/k each): per-trial and aggregate training images/s
    (each trial's mean over its epochs, compile excluded; the trials run together) and the
    aggregate's share of the bf16 GEMM peak."""
    from ablation.models import build_model
    from ablation.run.profile import profile_model
    from ablation.run.results import read_results
    from ablation.design.space import parse_space
    from ablation.run.sweep import run_sweep

    peak = bf16_peak_tflops(s)
    macs = profile_model(
        build_model("resnet20", num_classes=10, in_channels=3, small_input=True), 32, 3, latency=False
    ).flops
    rows = []
    for k in s.trials_per_gpu:
        spec = {
            "name": f"packed_{k}",
            "base": {
                "dataset": f"synthetic:size=32,channels=3,classes=10,train={s.packed_images},val={s.val_images}",
                "backbone": "resnet20",
                "batch_size": 128,
                "latency_runs": 1,
                "val_split": 0,
                "device": s.device,
            },
            "grid": {"seed": list(range(k))},
            "budget": {"epochs": s.packed_epochs, "max_concurrent": k},
            "resources": {"cpu": 1, "gpu": 1 / k if s.device == "cuda" else 0},
            "latency": {"calibrate": False},
            "train": {"path": s.packed_path},
        }
        with tempfile.TemporaryDirectory() as storage:
            start = time.perf_counter()
            outcome = run_sweep(parse_space(spec), storage=storage, verbose=0)
            wall = time.perf_counter() - start
            results = read_results(outcome.run_dir)
        rates = results["images_per_s"].astype(float)
        aggregate = float(rates.sum())
        row = {
            "trials per GPU": k,
            "GPU per trial": round(1 / k, 3),
            "completed": outcome.counts.get("completed", 0),
            "per-trial img/s (median)": float(rates.median()),
            "aggregate img/s": aggregate,
            "aggregate x 1 trial": aggregate / rows[0]["aggregate img/s"] if rows else 1.0,
            "of bf16 peak": aggregate * 6 * macs / (peak * 1e12),
            "sweep wall s (incl. start-up, compile)": wall,
            "setup": str(results["train_setup"].iloc[0]) if "train_setup" in results else "",
        }
        rows.append(row)
        print(f"packed {k}: {row}", flush=True)
    return rows, peak


def sca_parity(s: Setup) -> list[dict]:
    """SCA on CUDA (float32) against the CPU: max abs difference of outputs and input gradients."""
    from ablation.attention import build_attention

    rows = []
    for options in SCA_READINGS:
        torch.manual_seed(0)
        module = build_attention("sca", 32, **options).train()
        x = torch.randn(4, 32, 14, 14)
        outs = {}
        for device in dict.fromkeys(("cpu", s.device)):
            m = module.to(device)
            xi = x.to(device).requires_grad_(True)
            out = m(xi)
            out.square().sum().backward()
            outs[device] = (out.detach().cpu(), xi.grad.cpu())
        if s.device == "cpu":
            rows.append(
                {"options": options or "defaults", "forward max abs diff": "no CUDA", "backward max abs diff": "-"}
            )
            continue
        (a, ga), (b, gb) = outs["cpu"], outs["cuda"]
        rows.append(
            {
                "options": options or "defaults",
                "forward max abs diff": float((a - b).abs().max()),
                "backward max abs diff": float((ga - gb).abs().max()),
                "within 1e-4": bool(torch.allclose(a, b, atol=1e-4) and torch.allclose(ga, gb, atol=1e-4)),
            }
        )
    return rows


def write_jpegs(root: Path, n: int) -> None:
    """``n`` JPEGs at ImageNet-like sizes (about 500 x 375) in train/ and val/ class folders."""
    from PIL import Image

    gen = torch.Generator().manual_seed(0)
    for i in range(n):
        split = "val" if (i // 4) % 10 == 0 else "train"  # every class in both splits
        folder = root / split / f"c{i % 4}"
        folder.mkdir(parents=True, exist_ok=True)
        w = 400 + int(torch.randint(0, 200, (1,), generator=gen))
        h = 300 + int(torch.randint(0, 150, (1,), generator=gen))
        pixels = torch.randint(0, 256, (h // 8, w // 8, 3), generator=gen, dtype=torch.uint8)
        Image.fromarray(pixels.numpy()).resize((w, h)).save(folder / f"{i}.jpg", quality=90)


def loader_images_per_s(s: Setup, root: Path) -> float:
    from ablation.data import build_data

    data = build_data("imagefolder", str(root), batch_size=s.batch if not s.tiny else 8, workers=s.workers)
    it = iter(data.train)
    next(it)  # worker start-up
    start, seen = time.perf_counter(), 0
    for x, _ in it:
        seen += len(x)
    return seen / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="every part small, on the CPU (under a minute)")
    parser.add_argument("--out", default="reports/benchmarks")
    args = parser.parse_args()
    s = Setup(args.tiny)
    started = time.time()
    gpu = torch.cuda.get_device_name(0) if s.device == "cuda" else "none"
    train = throughput(s)
    lat = latency(s)
    sweep = fractional_sweep(s)
    packed, peak = packed_trials(s)
    parity = sca_parity(s)
    with tempfile.TemporaryDirectory() as tmp:
        write_jpegs(Path(tmp), s.jpegs)
        loader = loader_images_per_s(s, Path(tmp))
    gpu_rate = next(r["bare img/s"] for r in train if r["attention"] == "none")
    import pandas as pd

    lines = [
        f"# GPU check{' (--tiny: CPU, small sizes; says nothing about a GPU)' if s.tiny else ''}",
        "",
        f"Command: `python bench/gpu_check.py{' --tiny' if s.tiny else ''}`; {time.time() - started:.0f} s; device "
        f"{s.device} ({gpu}); torch {torch.__version__}, CUDA {torch.version.cuda or 'none'}; "
        f"{platform.processor() or platform.machine()}.",
        "",
        f"## Training throughput: {s.backbone} at {s.size} px, batch {s.batch}"
        + (", bf16 autocast, channels_last" if s.device == "cuda" else ""),
        "",
        "`run_trial` images/s (its second epoch, synthetic data held on the device) against a bare AMP loop "
        f"({s.steps} steps on random device batches) on the same model. Target: ratio >= 0.9 for every module: "
        + ("met" if all(r["ratio"] >= 0.9 for r in train) else "MISSED")
        + ".",
        "",
        pd.DataFrame(train).to_markdown(index=False, floatfmt=".3f"),
        "",
        f"## Eval latency ({s.rounds} interleaved rounds, wall clock, CUDA synchronised; ratio to the plain net)",
        "",
        pd.DataFrame(lat).to_markdown(index=False, floatfmt=".3f"),
        "",
        "## Fractional GPUs",
        "",
        f"4 trials with {sweep['gpu per trial']} GPU each: {sweep['counts']} in {sweep['wall s']:.0f} s.",
        "",
        "## Trials per GPU",
        "",
        f"resnet20 at 32 px, batch 128, synthetic data held on the {s.device}, {s.packed_images} training images, "
        f"{s.packed_epochs} epochs, training path `{s.packed_path}`; k trials with 1/k GPU each, run together. Per-trial images/s: "
        "each trial's mean over its epochs (compilation excluded); aggregate: their sum. Fraction of peak: aggregate "
        f"x 3 x 2 x the forward's multiply-adds per image (fvcore) against this device's bf16 GEMM peak, {peak:.1f} TFLOP/s (best `torch.mm`).",
        "",
        pd.DataFrame(packed).to_markdown(index=False, floatfmt=".3f"),
        "",
        "## SCA on CUDA against the CPU (float32, training mode, forward and input gradient)",
        "",
        pd.DataFrame(parity).to_markdown(index=False),
        "",
        "## Would an ImageNet trial wait for data?",
        "",
        f"ImageFolder loader as `imagenet_paper.yaml` runs it ({s.workers} workers, pinned memory where CUDA is "
        f"present, workers restarted every epoch) on {s.jpegs} JPEGs of about 500 x 375: {loader:.0f} images/s on "
        f"this machine's {os.cpu_count()} cores, against {gpu_rate:.0f} images/s of {s.backbone} "
        f"training on the {s.device}: "
        + (
            f"the loader keeps up ({loader / gpu_rate:.2f}x)."
            if loader >= gpu_rate
            else f"a trial would wait for data: the loader gives {loader / gpu_rate:.2f}x of what the GPU trains."
        ),
        "",
    ]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / ("gpu_check_tiny.md" if s.tiny else "gpu_check.md")).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
