"""Report figures (matplotlib, headless): accuracy against cost with the front, per-factor
effects with error bars, training curves, factor importance. Each function returns the
``Figure`` (tests read its plotted data); :func:`to_png` renders and closes it."""

from __future__ import annotations

import io
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, MaxNLocator  # noqa: E402
import pandas as pd  # noqa: E402

from .aggregate import cell_text  # noqa: E402
from .tables import short_label  # noqa: E402

COST_AXES = {"flops": "FLOPs (multiply-adds, M)", "params": "parameters (M)"}


def to_png(fig: plt.Figure) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()


def _error(variants: pd.DataFrame) -> np.ndarray:
    """Standard deviation of top-1 over seeds (0 for one seed): with two or three seeds a 95% CI
    is too wide to read in a plot; the tables give it."""
    return variants["top1_std"].fillna(0).to_numpy(float)


def front_2d(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Indices of the points no other point beats on both lower ``x`` and higher ``y``, by ``x``."""
    order = np.lexsort((-y, x))
    best, keep = -math.inf, []
    for i in order:
        if y[i] > best:
            keep.append(i)
            best = y[i]
    return np.array(keep, dtype=int)


def tick_formatter(low: float, high: float) -> FuncFormatter:
    """Tick labels with just enough decimals for the spacing of at most five ticks over
    ``[low, high]`` (small ranges such as 0.27220-0.27226 M would otherwise print long, crowded
    labels)."""
    step = (high - low) / 4 if high > low else abs(high) or 1.0
    decimals = max(0, min(8, -math.floor(math.log10(step)) + 1))
    return FuncFormatter(lambda value, _: f"{value:.{decimals}f}")


def _cost_axis(ax: plt.Axes, x: np.ndarray) -> None:
    ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(tick_formatter(float(np.nanmin(x)), float(np.nanmax(x))))
    ax.tick_params(axis="x", labelrotation=20)


def accuracy_vs_cost(variants: pd.DataFrame, cost: str, accuracy: str = "top-1 %") -> plt.Figure:
    """Top-1 (mean ± std) against ``cost`` per backbone; the front of this plane drawn as a
    staircase, variants on the full multi-objective Pareto front ringed."""
    fig, axes = plt.subplots(
        1, variants["backbone"].nunique(), figsize=(6.4 * variants["backbone"].nunique(), 4.6), squeeze=False
    )
    for ax, (backbone, group) in zip(axes[0], variants.groupby("backbone", sort=True)):
        x, y = group[cost].to_numpy(float) / 1e6, group["top1_mean"].to_numpy(float)
        ax.errorbar(
            x, y, yerr=_error(group), fmt="o", capsize=3, color="tab:blue", label="variant (mean ± std over seeds)"
        )
        pareto = group["pareto"].to_numpy(bool)
        ax.scatter(
            x[pareto], y[pareto], s=160, facecolors="none", edgecolors="black", label="Pareto front (all objectives)"
        )
        front = front_2d(x, y)
        ax.step(x[front], y[front], where="post", color="tab:orange", alpha=0.7, label="front in this plane")
        for xi, yi, name in zip(x, y, group["label"]):
            ax.annotate(short_label(name, backbone), (xi, yi), textcoords="offset points", xytext=(5, 5), fontsize=8)
        _top1_limits(ax, y, _error(group))
        _cost_axis(ax, x)
        ax.set_title(backbone)
        ax.set_xlabel(COST_AXES[cost])
        ax.set_ylabel(accuracy)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    return fig


def factor_categories(variants: pd.DataFrame, factor: str) -> list[str]:
    """The values of ``factor`` over all backbones, in axis order (``-``, not applicable, first)."""
    return sorted(variants[factor].map(cell_text).unique(), key=_sort_key)


def factor_effects(variants: pd.DataFrame, factors: list[str], accuracy: str = "top-1 %") -> plt.Figure:
    """Mean top-1 (± std over seeds) for each value of each factor, one line per backbone; every
    backbone's values are drawn at their own category on one shared axis of all values."""
    fig, axes = plt.subplots(1, len(factors), figsize=(4.6 * len(factors), 4.0), squeeze=False)
    for ax, factor in zip(axes[0], factors):
        order = factor_categories(variants, factor)
        means, errors = [], []
        for backbone, group in variants.groupby("backbone", sort=True):
            values = group[factor].map(cell_text)
            group = group.assign(position=[order.index(v) for v in values]).sort_values("position")
            ax.errorbar(
                group["position"],
                group["top1_mean"],
                yerr=_error(group),
                capsize=3,
                label=backbone,
                fmt="o" if factor == "attention" else "o-",
                alpha=0.85,
            )
            means.append(group["top1_mean"].to_numpy(float))
            errors.append(_error(group))
        ax.set_xticks(range(len(order)), [v if v != "-" else "none" for v in order])
        _top1_limits(ax, np.concatenate(means), np.concatenate(errors))
        ax.set_title(factor)
        ax.set_ylabel(accuracy)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    return fig


#: Training-curve panels: (epochs.csv column, axis label).
CURVES: tuple[tuple[str, str], ...] = (("top1", "val top-1 %"), ("train_loss", "training loss"))


def curve_lines(epochs: pd.DataFrame, labels: dict[str, str], metric: str) -> dict[str, dict[str, pd.DataFrame]]:
    """Per backbone, per variant label: ``metric`` by epoch as mean, min and max over seeds."""
    frame = epochs[epochs["variant"].isin(labels)].assign(label=lambda f: f["variant"].map(labels))
    out: dict[str, dict[str, pd.DataFrame]] = {}
    for (backbone, label), group in frame.groupby(["backbone", "label"], sort=True):
        stats = group.groupby("epoch")[metric].agg(["mean", "min", "max", "count"]).reset_index()
        out.setdefault(backbone, {})[label] = stats
    return out


def training_curves(epochs: pd.DataFrame, labels: dict[str, str]) -> plt.Figure:
    """Validation top-1 and training loss against epoch: one panel row per backbone, one line per
    variant (``labels``: variant id -> label) at the mean over seeds, the band spanning the
    lowest to the highest seed."""
    lines = {metric: curve_lines(epochs, labels, metric) for metric, _ in CURVES}
    backbones = sorted(lines[CURVES[0][0]])
    fig, axes = plt.subplots(
        len(backbones), len(CURVES), figsize=(6.0 * len(CURVES), 3.8 * len(backbones)), squeeze=False
    )
    for row, backbone in zip(axes, backbones):
        for ax, (metric, name) in zip(row, CURVES):
            for label, stats in lines[metric][backbone].items():
                (line,) = ax.plot(stats["epoch"], stats["mean"], marker=".", label=short_label(label, backbone))
                ax.fill_between(stats["epoch"], stats["min"], stats["max"], color=line.get_color(), alpha=0.18)
            ax.set_title(f"{backbone}: {name}")
            ax.set_xlabel("epoch")
            ax.set_ylabel(name)
            if metric == "train_loss":
                ax.set_yscale("log")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    return fig


def importance_plot(importance: dict[str, dict[str, float]], evaluator: str) -> plt.Figure:
    """Horizontal bars of each factor's importance for each target."""
    targets = list(importance)
    factors = sorted({f for imp in importance.values() for f in imp})
    fig, ax = plt.subplots(figsize=(6.4, 0.5 + 0.45 * len(factors) * len(targets)))
    height = 0.8 / max(len(targets), 1)
    for i, target in enumerate(targets):
        ax.barh(
            np.arange(len(factors)) + i * height,
            [importance[target].get(f, 0.0) for f in factors],
            height=height,
            label=target,
        )
    ax.set_yticks(np.arange(len(factors)) + height * (len(targets) - 1) / 2, factors)
    ax.set_xlabel(f"importance ({evaluator.split(' ')[0]})")
    ax.legend(fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    return fig


def _sort_key(value: str) -> tuple:
    """Not applicable (the baseline) first, then numbers by value, then names."""
    if value == "-":
        return (0, 0.0, value)
    try:
        return (1, float(value), value)
    except ValueError:
        return (2, 0.0, value)


def _top1_limits(ax: plt.Axes, means: np.ndarray, errors: np.ndarray) -> None:
    """Y range covering the error bars, within 0-100% (and a little headroom for labels)."""
    low, high = np.nanmin(means - errors), np.nanmax(means + errors)
    pad = max((high - low) * 0.08, 0.5)
    ax.set_ylim(max(low - pad, 0.0), min(high + pad, 101.0))
