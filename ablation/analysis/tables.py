"""Report tables in the paper's style (variant, params, FLOPs, top-1 mean +- std, delta to the
baseline), as DataFrames of display strings, and their LaTeX (booktabs) rendering."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .aggregate import cell_text, is_attention_factor


#: Column of conv and FC multiply-adds (the papers' FLOP convention; ``flops_convfc``).
CONVFC = "MACs conv+FC"


def flops_note(variants: pd.DataFrame) -> str:
    """The sentence that tells the two FLOP columns apart (and says where one was not recorded)."""
    text = (
        "FLOPs: multiply-adds for one image, every operation counted (convolutions, fully connected layers, "
        f"batch norm, activations, residual adds, pooling, attention's elementwise work); {CONVFC}: "
        "convolutions and fully connected layers only, the convention of the papers and torchvision's model "
        "tables (ResNet-50 at 224 px: 4.09 G), to place a figure against a published one."
    )
    recorded = (
        variants["flops_convfc"].notna() if "flops_convfc" in variants else pd.Series(False, index=variants.index)
    )
    if not recorded.all():
        text += f" {CONVFC} is '-' for trials run before the harness recorded it."
    return text


def with_display_names(info: dict[str, Any], *frames: pd.DataFrame) -> tuple[Any, ...]:
    """``info`` (``sweep.json``) and ``frames`` (results, epochs) with users' modules and
    backbones under their display names, as the sweep recorded them when it started
    (``display_names``), for every table, label and plot of a report: in the ``attention`` and
    ``backbone`` columns, and in a seed budget's ``reference`` (matched against those columns).
    The data files keep the names as given; the variant id links the two."""
    names = {k: m for k, m in (info.get("display_names") or {}).items() if m}
    if not names:
        return (info, *frames)

    def rename(value: Any, mapping: dict[str, str]) -> Any:
        return mapping.get(value, value) if isinstance(value, str) else value

    out = []
    for frame in frames:
        frame = frame.copy()
        for column, mapping in names.items():
            if column in frame:
                frame[column] = frame[column].map(lambda v, m=mapping: rename(v, m))
        out.append(frame)
    seeds = ((info.get("space") or {}).get("budget") or {}).get("seeds") or {}
    if seeds.get("reference"):
        reference = {k: rename(v, names.get(k, {})) for k, v in seeds["reference"].items()}
        space = info["space"]
        info = {**info, "space": {**space, "budget": {**space["budget"], "seeds": {**seeds, "reference": reference}}}}
    return (info, *out)


def short_label(label: str, backbone: str) -> str:
    """A variant's label without its backbone name (for plots and per-backbone tables)."""
    return label.removeprefix(str(backbone)).strip() or label


def count(value: float) -> str:
    """Millions with enough digits to tell attention variants apart (``0.2722M``)."""
    if value is None or math.isnan(value):
        return "-"
    return f"{value / 1e9:.3f}G" if value >= 1e9 else f"{value / 1e6:.4f}M"


def mean_std(mean: float, std: float) -> str:
    if math.isnan(mean):
        return "-"
    return f"{mean:.2f}" if math.isnan(std) else f"{mean:.2f} ± {std:.2f}"


def delta_text(row: pd.Series | None) -> str:
    """``+0.42 [-0.10, +0.94]`` with ``*`` where decided beyond seed noise (familywise, the
    interval at its tested level: ``ablation.analysis.rank.deltas``); ``-`` for baselines."""
    if row is None:
        return "-"
    text = f"{row['delta_top1']:+.2f}"
    if not math.isnan(row["ci_low"]):
        text += f" [{row['ci_low']:+.2f}, {row['ci_high']:+.2f}]" + (" *" if row["significant"] else "")
    return text


def variant_name(v: pd.Series) -> str:
    """A variant's short label, marked ``†`` when any of its trials collapsed."""
    name = short_label(v["label"], v["backbone"])
    return name + (" †" if v.get("n_collapsed", 0) else "")


def latency_text(v: pd.Series, path: str = "eager") -> str:
    """Calibrated ``x1.08 [1.05, 1.10] 2.31 ms`` (ratio to the plain backbone, IQR, ms), or the
    per-trial ms; ``(fused kernel)`` where SCA ran its hand-fused kernel."""
    ms = v.get("latency_ms")
    if ms is None or math.isnan(ms):
        return "-"
    ratio = v.get("latency_ratio")
    text = (
        f"{ms:.2f} ms"
        if ratio is None or math.isnan(ratio)
        else f"x{ratio:.3f} [{v['latency_ratio_q25']:.3f}, {v['latency_ratio_q75']:.3f}] {ms:.2f} ms"
    )
    return text + (" (fused kernel)" if path == "fused-sca" and v.get("attention") == "sca" else "")


def seeds_text(v: pd.Series) -> str:
    """Per-seed values of the reported top-1 and the count of collapsed ones."""
    text = str(v.get("top1_per_seed", ""))
    collapsed = int(v.get("n_collapsed", 0) or 0)
    return text + (f" ({collapsed} of {int(v['n'])} collapsed)" if collapsed else "")


def variant_table(
    variants: pd.DataFrame,
    deltas: pd.DataFrame,
    accuracy: str = "top-1 %",
    latency: str = "latency ms",
    path: str = "eager",
    selection: str = "",
) -> pd.DataFrame:
    """Every ranked variant: backbone, variant, seeds, params, FLOPs (ours and conv+FC), latency, top-1 (mean ± std,
    median, per seed), delta, front. ``accuracy``/``latency`` name those columns; ``selection``,
    when given, names a column of the selection split's top-1 (where it differs from the reported)."""
    by_variant = {r["variant"]: r for _, r in deltas.iterrows()} if not deltas.empty else {}
    rows = []
    for _, v in variants.sort_values(["backbone", "nd_rank", "top1_mean"], ascending=[True, True, False]).iterrows():
        row = {
            "backbone": v["backbone"],
            "variant": variant_name(v),
            "n": int(v["n"]),
            "params": count(v["params"]),
            "FLOPs": count(v["flops"]),
            CONVFC: count(v.get("flops_convfc")),
            latency: latency_text(v, path),
        }
        if selection:
            row[selection] = mean_std(v["val_top1_mean"], v["val_top1_std"])
        row.update(
            {
                accuracy: mean_std(v["top1_mean"], v["top1_std"]),
                "median": "-" if math.isnan(v["top1_median"]) else f"{v['top1_median']:.2f}",
                "per seed": seeds_text(v),
                "Δ top-1 [CI]": delta_text(by_variant.get(v["variant"])),
                "Pareto": "yes" if v["pareto"] else "",
                "rank": int(v["nd_rank"]),
            }
        )
        rows.append(row)
    return pd.DataFrame(rows)


def factor_tables(
    variants: pd.DataFrame, deltas: pd.DataFrame, factors: list[str], accuracy: str = "top-1 %"
) -> dict[str, pd.DataFrame]:
    """One table per varying attention factor: the baselines and the variants it applies to,
    ordered by backbone and factor value."""
    by_variant = {r["variant"]: r for _, r in deltas.iterrows()} if not deltas.empty else {}
    tables = {}
    for factor in [f for f in factors if is_attention_factor(f)]:
        applies = variants[(variants["attention"] == "none") | variants[factor].map(cell_text).ne("-")]
        rows = []
        for _, v in applies.sort_values(["backbone", factor], key=lambda s: s.map(cell_text)).iterrows():
            rows.append(
                {
                    "backbone": v["backbone"],
                    factor: cell_text(v[factor]),
                    "variant": variant_name(v),
                    "params": count(v["params"]),
                    "FLOPs": count(v["flops"]),
                    CONVFC: count(v.get("flops_convfc")),
                    accuracy: mean_std(v["top1_mean"], v["top1_std"]),
                    "median": "-" if math.isnan(v["top1_median"]) else f"{v['top1_median']:.2f}",
                    "per seed": seeds_text(v),
                    "Δ top-1": delta_text(by_variant.get(v["variant"])),
                }
            )
        tables[factor] = pd.DataFrame(rows)
    return tables


def latex(tables: dict[str, pd.DataFrame], name: str) -> str:
    """All tables as LaTeX ``table`` environments with booktabs rules (``\\usepackage{booktabs}``)."""
    parts = [f"% Tables of sweep {name}, generated by `ablate report`; needs \\usepackage{{booktabs}}.\n"]
    for title, table in tables.items():
        styler = table.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
        text = styler.to_latex(
            hrules=True,
            position="htbp",
            position_float="centering",
            caption=f"{name}: {title}".replace("_", r"\_"),
            label=f"tab:{name}-{title}".replace("_", "-"),
        )
        parts.append(text.replace("±", r"$\pm$").replace("Δ", r"$\Delta$").replace("†", r"$\dagger$"))
    return "\n".join(parts)
