"""Report figures place every point where it belongs: read back from the figures' own data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from ablation.analysis import plots
from ablation.analysis.aggregate import aggregate
from report_fixtures import study_rows, trial_row, write_epochs_for


def _position_variants() -> pd.DataFrame:
    """Backbones with different positions (as in fashion_position): MobileNetV2 has ``dw`` and no
    ``pre``/``identity``; each value gets its own top-1 so a misplaced point is visible."""
    rows, i = [], 0
    top1 = {
        ("resnet20", "standard"): 80.0,
        ("resnet20", "pre"): 81.0,
        ("resnet20", "post"): 82.0,
        ("resnet20", "identity"): 83.0,
        ("mobilenet_v2", "standard"): 60.0,
        ("mobilenet_v2", "dw"): 61.0,
        ("mobilenet_v2", "post"): 62.0,
    }
    for (backbone, position), value in top1.items():
        rows.append(
            trial_row(i, backbone=backbone, attention="sca", position=position, top1=value, flops=1e6, params=1e4)
        )
        i += 1
    for backbone in ("resnet20", "mobilenet_v2"):
        rows.append(trial_row(i, backbone=backbone, top1=70.0, flops=1e6, params=1e4))
        i += 1
    return aggregate(pd.DataFrame(rows))


def _points(ax: plt.Axes) -> dict[str, list[tuple[str, float]]]:
    """Per legend label: (tick label at x, y) of each plotted point."""
    ticks = {round(t): label.get_text() for t, label in zip(ax.get_xticks(), ax.get_xticklabels())}
    return {
        container.get_label(): [(ticks[round(x)], y) for x, y in container.lines[0].get_xydata()]
        for container in ax.containers
    }


def test_factor_effects_draws_each_backbone_at_its_own_categories():
    variants = _position_variants()
    fig = plots.factor_effects(variants, ["position"])
    ax = fig.axes[0]
    points = _points(ax)
    plt.close(fig)
    assert set(points) == {"resnet20", "mobilenet_v2"}
    for backbone, drawn in points.items():
        expected = {
            (str(p) if p != "-" and pd.notna(p) else "none", v)
            for p, v, b in zip(variants["position"], variants["top1_mean"], variants["backbone"])
            if b == backbone
        }
        assert set(drawn) == expected, backbone
    assert dict(points["mobilenet_v2"])["dw"] == 61.0 and dict(points["resnet20"])["identity"] == 83.0


def test_small_cost_ranges_get_short_distinct_ticks():
    formatter = plots.tick_formatter(0.27220, 0.27226)
    labels = [formatter(v, None) for v in np.linspace(0.27220, 0.27226, 4)]
    assert len(set(labels)) == 4 and max(map(len, labels)) <= 9
    assert plots.tick_formatter(10.0, 50.0)(20.0, None) == "20"
    variants = aggregate(pd.DataFrame(study_rows())).assign(pareto=False)
    fig = plots.accuracy_vs_cost(variants, "params")
    for ax in fig.axes:
        fig.canvas.draw()
        texts = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
        assert 2 <= len(texts) <= 6 and len(set(texts)) == len(texts)
    plt.close(fig)


def test_training_curves_plot_the_mean_over_seeds_with_the_seed_band(tmp_path):
    rows = study_rows()
    epochs = write_epochs_for(tmp_path, rows, epochs=3)
    variants = aggregate(pd.DataFrame(rows))
    labels = dict(zip(variants["variant"], variants["label"]))
    fig = plots.training_curves(epochs, labels)
    assert len(fig.axes) == 4  # two backbones x (val top-1, training loss)
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == [
        "mobilenet_v2: val top-1 %",
        "mobilenet_v2: training loss",
        "resnet20: val top-1 %",
        "resnet20: training loss",
    ]
    ax = fig.axes[2]
    line = next(ln for ln in ax.get_lines() if ln.get_label() == "sca k=5")
    want = epochs[(epochs["backbone"] == "resnet20") & (epochs["variant"].map(labels) == "resnet20 sca k=5")]
    expected = want.groupby("epoch")["top1"].mean()
    np.testing.assert_allclose(line.get_xydata(), np.column_stack([expected.index, expected.to_numpy()]))
    band = ax.collections[[ln.get_label() for ln in ax.get_lines()].index("sca k=5")]
    vertices = band.get_paths()[0].vertices
    low, high = want.groupby("epoch")["top1"].min(), want.groupby("epoch")["top1"].max()
    assert vertices[:, 1].min() == pytest.approx(low.min()) and vertices[:, 1].max() == pytest.approx(high.max())
    assert fig.axes[1].get_yscale() == "log"
    plt.close(fig)
