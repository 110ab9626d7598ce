"""Bring your own block: attention modules and backbones by import path and by entry point,
through every command, with one clear line for each mistake, and on Ray's workers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import yaml

from ablation.cli import main

EXAMPLE = Path(__file__).parents[1] / "docs" / "byo_block"
TINY = [
    "dataset=synthetic:size=8,channels=1,classes=2,train=64,val=32",
    "batch_size=32",
    "epochs=1",
    "latency_runs=1",
    "device=cpu",
    "threads=1",
]
BAD = """
import torch
from torch import nn

class Shrink(nn.Module):
    def __init__(self, channels, factor=2):
        super().__init__()
        self.factor = factor
    def forward(self, x):
        return x[:, : x.shape[1] // self.factor]

NOT_CALLABLE = 3

def no_channels():
    return nn.Identity()

def explodes(channels):
    raise RuntimeError("kaboom")

def not_a_module(channels):
    return "identity"
"""


@pytest.fixture
def example(monkeypatch):
    monkeypatch.syspath_prepend(str(EXAMPLE))
    return EXAMPLE


@pytest.fixture
def bad_blocks(tmp_path, monkeypatch):
    (tmp_path / "bad_blocks.py").write_text(BAD)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("bad_blocks", None)
    return tmp_path


def test_import_path_module_through_profile_train_and_validate(example, tmp_path, capsys):
    assert (
        main(
            [
                "profile",
                "--backbone",
                "resnet20",
                "--attention",
                "my_blocks:SimAM",
                "--option",
                "e_lambda=0.01",
                "--small-input",
                "--input-size",
                "16",
                "--no-latency",
                "--json",
            ]
        )
        == 0
    )
    captured = capsys.readouterr()
    figures = json.loads(captured.out)
    assert figures["attention_flops"] > 0 and figures["e_lambda"] == 0.01
    assert figures["uncounted_ops"] == "aten::pow x9" and "aten::pow x9" in captured.err  # listed, never silent
    out = tmp_path / "trial.json"
    assert main(["train", "attention=my_blocks:SimAM", "e_lambda=0.001", *TINY, "--out", str(out), "--quiet"]) == 0
    result = json.loads(out.read_text())
    assert result["config"]["e_lambda"] == 0.001 and result["config"]["attention"] == "my_blocks:SimAM"
    assert result["uncounted_ops"] == "aten::pow x9"
    assert main(["validate", str(example / "space.yaml")]) == 0
    assert "10 trials" in capsys.readouterr().out


def test_user_backbone_places_the_attention_itself(example, tmp_path):
    import torch

    from ablation.models import build_model
    from ablation.run.profile import attention_modules

    model = build_model("my_blocks:tiny_net", "se", num_classes=3, in_channels=1)
    assert len(attention_modules(model)) == 2 and model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    out = tmp_path / "trial.json"
    assert (
        main(["train", "backbone=my_blocks:tiny_net", "attention=my_blocks:SimAM", *TINY, "--out", str(out), "--quiet"])
        == 0
    )
    assert json.loads(out.read_text())["attention_params"] == 0


@pytest.mark.parametrize(
    "argv, words",
    [
        (
            ["attention=nope_pkg.blocks:Gate"],
            ["nope_pkg.blocks:Gate", "cannot import module 'nope_pkg.blocks'", "ModuleNotFoundError"],
        ),
        (["attention=bad_blocks:Missing"], ["'bad_blocks' has no attribute 'Missing'", "Shrink"]),
        (["attention=bad_blocks:NOT_CALLABLE"], ["not callable"]),
        (["attention=bad_blocks:no_channels"], ["no channels argument", "(channels, **options)"]),
        (["attention=bad_blocks:explodes"], ["cannot be built", "RuntimeError: kaboom"]),
        (["attention=bad_blocks:not_a_module"], ["returned str, not a torch.nn.Module"]),
        (["attention=bad_blocks:Shrink"], ["output (2, 4, 5, 6) for input (2, 8, 5, 6)", "keep the shape"]),
        (["attention=my_blocks:SimAM", "lam=0.1"], ["unknown key(s) ['lam']", "its options: ['e_lambda']"]),
        (
            ["backbone=my_blocks:tiny_net", "position=pre"],
            ["'my_blocks:tiny_net' does not take ['position']", "in_channels"],
        ),
        (["backbone=my_blocks:SimAM"], ["must take ['num_classes', 'attention']"]),
    ],
)
def test_each_mistake_is_one_clear_line_with_exit_2(example, bad_blocks, capsys, argv, words):
    assert main(["train", *argv, *TINY, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_space_errors_name_the_key_path(example, bad_blocks, tmp_path, capsys):
    space = {
        "name": "bad",
        "base": {"dataset": "digits"},
        "budget": {"epochs": 1},
        "grid": [{"attention": ["se", "bad_blocks:Shrink"], "seed": [0]}],
    }
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(space))
    assert main(["sweep", str(tmp_path / "s.yaml"), "--storage", str(tmp_path / "runs")]) == 2
    err = capsys.readouterr().err
    assert "grid[0].attention[1]" in err and "keep the shape" in err
    space["grid"] = [{"attention": ["my_blocks:SimAM"], "e_lambda": [0.01, "big"], "seed": [0]}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(space))
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    err = capsys.readouterr().err
    assert "grid[0].e_lambda[1]" in err and "'big'" in err
    space["grid"] = [{"attention": ["se"], "e_lambda": [0.01], "seed": [0]}]
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(space))
    assert main(["validate", str(tmp_path / "s.yaml")]) == 2
    assert "grid[0].e_lambda: unknown key" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_expansion_drops_a_user_option_where_it_does_not_apply(example):
    from ablation.design.space import parse_space

    space = parse_space(
        {
            "name": "mix",
            "budget": {"epochs": 1},
            "grid": {"attention": ["none", "my_blocks:SimAM"], "e_lambda": [0.1, 0.2], "seed": [0]},
        }
    )
    configs = space.configs()
    assert len(configs) == 3  # none once, SimAM twice
    assert sorted(c.attention_kwargs().get("e_lambda", 0) for c in configs) == [0, 0.1, 0.2]


def test_entry_point_module_from_an_installed_distribution(tmp_path, monkeypatch, capsys):
    """A package registering a module in the group ``ablation.attention`` (a distribution faked
    by its dist-info folder on sys.path, as pip would install it)."""
    site = tmp_path / "site"
    (site / "gate_pkg").mkdir(parents=True)
    (site / "gate_pkg" / "__init__.py").write_text(
        textwrap.dedent("""
        from torch import nn
        class Gate(nn.Module):
            def __init__(self, channels, scale=1.0):
                super().__init__()
                self.scale = scale
            def forward(self, x):
                return x * self.scale
    """)
    )
    info = site / "gate_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: gate-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ablation.attention]\nmygate = gate_pkg:Gate\n")
    monkeypatch.syspath_prepend(str(site))
    assert main(["list", "--json"]) == 0
    listed = {r["attention"]: r for r in json.loads(capsys.readouterr().out)["attention"]}
    assert listed["mygate"]["options"] == ["scale"] and "gate-pkg" in listed["mygate"]["from"]
    assert "sca" in listed and listed["sca"]["from"] == "ablation"
    out = tmp_path / "t.json"
    assert main(["train", "attention=mygate", "scale=0.5", *TINY, "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["config"]["scale"] == 0.5


@pytest.mark.slow
def test_a_local_users_module_reaches_the_ray_workers(tmp_path):
    """The driver imports my_blocks from its folder and takes that folder off sys.path again, so
        Ray cannot pass it to workers as a driver path: only the runtime environment's py_modules can
        bring it there. The example space runs for one epoch on digits (one seed, a 200-image subset),
    two trials at once."""
    space = yaml.safe_load((EXAMPLE / "space.yaml").read_text())
    space["budget"]["epochs"] = 1
    space["base"]["subset"] = 200
    space["latency"] = {"calibrate": False}
    for block in space["grid"]:
        block["seed"] = [0]
    (tmp_path / "space.yaml").write_text(yaml.safe_dump(space))
    driver = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(EXAMPLE)!r})
        import my_blocks
        sys.path.remove({str(EXAMPLE)!r})
        from ablation.design.space import load_space
        from ablation.run.sweep import _runtime_env, run_sweep
        space = load_space({str(tmp_path / "space.yaml")!r})
        print("PY_MODULES", _runtime_env(space).get("py_modules"))
        outcome = run_sweep(space, storage={str(tmp_path / "runs")!r}, verbose=0)
        print("COUNTS", outcome.counts)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    done = subprocess.run(
        [sys.executable, "-c", driver], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"PY_MODULES ['{EXAMPLE / 'my_blocks'}']" in done.stdout
    assert "COUNTS {'completed': 5}" in done.stdout
    table = pd.read_csv(tmp_path / "runs" / "byo_block" / "results.csv")
    simam = table[table["attention"] == "my_blocks:SimAM"]
    assert sorted(simam["e_lambda"]) == [0.0001, 0.01] and simam["ray_node"].notna().all()
    assert set(simam["uncounted_ops"]) == {"aten::pow x9"}


def test_report_lists_the_ops_counted_as_zero(tmp_path):
    from ablation.analysis.report import write_report
    from report_fixtures import study_rows, write_run

    rows = study_rows(seeds=(0, 1))
    for r in rows:
        r["uncounted_ops"] = "aten::pow x9" if r["kernel_size"] == 5 else ""
    md = (write_report(write_run(tmp_path / "run", rows), tmp_path / "report") / "report.md").read_text()
    block = md[md.index("## FLOPs not counted") :]
    assert "lower bounds" in block and "aten::pow x9" in block.split("##")[1]
    assert block.split("##")[1].count("aten::pow x9") == 2  # the k=5 variant of each backbone, once


GCT = '''
from typing import Optional

import torch
from torch import nn


class GCT(nn.Module):
    """Gated Channel Transformation, with options of two types and a short name for tables."""

    display_name = "GCT"

    def __init__(self, channels, epsilon=1e-5, mode="l2"):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.epsilon, self.mode = epsilon, mode

    def forward(self, x):
        norm = (x.pow(2).sum((2, 3), keepdim=True) + self.epsilon).pow(0.5) if self.mode == "l2" else \\
            x.abs().sum((2, 3), keepdim=True)
        embedding = norm * self.alpha
        scale = self.gamma / (embedding.pow(2).mean(1, keepdim=True) + self.epsilon).pow(0.5)
        return x * (1.0 + torch.tanh(embedding * scale + self.beta))


class Heads(nn.Module):
    """Needs an option the space may not give."""

    def __init__(self, channels, heads: int):
        super().__init__()
        self.heads = heads

    def forward(self, x):
        return x


class Typed(nn.Module):
    def __init__(self, channels, scale: Optional[float] = None, steps: int = 1, on: bool = True, tag: str = "a"):
        super().__init__()
        self.options = (scale, steps, on, tag)

    def forward(self, x):
        return x


def vgg4(num_classes, attention, in_channels=3):
    """A 4-layer VGG-style backbone."""
    layers, channels = [], in_channels
    for width in (8, 8, 16, 16):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), attention(width)]
        channels = width
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, num_classes))


vgg4.display_name = "VGG-4"
'''


@pytest.fixture
def gct_blocks(tmp_path, monkeypatch):
    (tmp_path / "gct_blocks.py").write_text(GCT)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    sys.modules.pop("gct_blocks", None)
    return tmp_path


def _space_file(folder: Path, grid: dict, **base) -> str:
    space = {
        "name": "own",
        "base": {"dataset": TINY[0].split("=", 1)[1], "batch_size": 32, **base},
        "budget": {"epochs": 1},
        "grid": grid,
    }
    (folder / "space.yaml").write_text(yaml.safe_dump(space))
    return str(folder / "space.yaml")


def _one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    return err


PROFILE = [
    "profile",
    "--backbone",
    "resnet20",
    "--small-input",
    "--input-size",
    "8",
    "--num-classes",
    "2",
    "--in-channels",
    "1",
    "--no-latency",
    "--json",
]


@pytest.mark.parametrize("command", ["profile", "train", "validate"])
def test_an_option_without_default_that_is_not_given_is_one_line(gct_blocks, capsys, command):
    argv = {
        "profile": [*PROFILE, "--attention", "gct_blocks:Heads"],
        "train": ["train", "attention=gct_blocks:Heads", *TINY, "--quiet"],
        "validate": ["validate", _space_file(gct_blocks, {"attention": ["none", "gct_blocks:Heads"]})],
    }[command]
    assert main(argv) == 2
    err = _one_line(capsys)
    assert "'gct_blocks:Heads' needs option(s) ['heads']" in err and "heads=VALUE" in err
    if command == "validate":
        assert "grid.attention[1]" in err


def test_an_option_without_default_given_by_the_space_builds(gct_blocks, capsys):
    assert (
        main(
            [
                "validate",
                "--no-cost",
                _space_file(gct_blocks, {"attention": ["none", "gct_blocks:Heads"], "heads": [2, 4]}),
            ]
        )
        == 0
    )
    from ablation.design.space import load_space

    configs = load_space(gct_blocks / "space.yaml").configs()
    assert sorted(c.attention_kwargs().get("heads", 0) for c in configs) == [0, 2, 4]


@pytest.mark.parametrize("command", ["profile", "train", "validate"])
def test_option_values_take_the_type_the_signature_declares(gct_blocks, tmp_path, capsys, command):
    """1e-5 reaches the module as the float 1e-05, though YAML 1.1 reads it as the string '1e-5'."""
    if command == "profile":
        assert main([*PROFILE, "--attention", "gct_blocks:GCT", "--option", "epsilon=1e-5"]) == 0
        assert json.loads(capsys.readouterr().out)["epsilon"] == 1e-05
    elif command == "train":
        out = tmp_path / "t.json"
        assert main(["train", "attention=gct_blocks:GCT", "epsilon=1e-5", *TINY, "--out", str(out), "--quiet"]) == 0
        assert json.loads(out.read_text())["config"]["epsilon"] == 1e-05
    else:
        path = _space_file(gct_blocks, {"attention": ["none", "gct_blocks:GCT"], "epsilon": ["1e-5", 1]})
        assert "  - 1e-5\n" in (gct_blocks / "space.yaml").read_text()  # as a user writes it; YAML reads a string
        assert main(["validate", "--no-cost", path]) == 0
        from ablation.design.space import load_space

        values = sorted(c.attention_kwargs()["epsilon"] for c in load_space(path).configs() if c.attention != "none")
        assert values == [1e-05, 1.0] and all(type(v) is float for v in values)


@pytest.mark.parametrize("command", ["profile", "train", "validate"])
def test_an_option_value_of_the_wrong_type_is_one_line(gct_blocks, capsys, command):
    argv = {
        "profile": [*PROFILE, "--attention", "gct_blocks:GCT", "--option", "epsilon=small"],
        "train": ["train", "attention=gct_blocks:GCT", "epsilon=small", *TINY, "--quiet"],
        "validate": [
            "validate",
            _space_file(gct_blocks, {"attention": ["gct_blocks:GCT"], "epsilon": [1e-3, "small"]}),
        ],
    }[command]
    assert main(argv) == 2
    err = _one_line(capsys)
    assert "option epsilon wants float, got 'small' (str)" in err
    if command == "validate":
        assert "grid.epsilon[1]" in err


@pytest.mark.parametrize(
    "options, expected",
    [
        (
            {"scale": "1e-5", "steps": "3", "on": False, "tag": "b"},
            {"scale": 1e-05, "steps": 3, "on": False, "tag": "b"},
        ),
        ({"scale": 2, "steps": 2}, {"scale": 2.0, "steps": 2}),
        ({"scale": None}, {"scale": None}),
    ],
)
def test_coercion_follows_annotations(gct_blocks, options, expected):
    from ablation.attention.registry import coerce_options

    coerced = coerce_options("gct_blocks:Typed", options)
    assert coerced == expected and [type(v) for v in coerced.values()] == [type(v) for v in expected.values()]


@pytest.mark.parametrize(
    "options, words",
    [
        ({"steps": 2.5}, "option steps wants int, got 2.5 (float)"),
        ({"steps": True}, "option steps wants int, got True (bool)"),
        ({"on": "maybe"}, "option on wants bool, got 'maybe' (str)"),
        ({"tag": 1.1}, "option tag wants str, got 1.1 (float) (quote it to pass text)"),
    ],
)
def test_coercion_refuses_what_the_type_cannot_hold(gct_blocks, options, words):
    from ablation.attention.registry import coerce_options
    from ablation.errors import ConfigError

    with pytest.raises(ConfigError, match=words.replace("(", r"\(").replace(")", r"\)")):
        coerce_options("gct_blocks:Typed", options)


def test_list_describes_an_import_path(gct_blocks, capsys):
    assert main(["list", "gct_blocks:GCT", "gct_blocks:Heads", "gct_blocks:vgg4", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    gct, heads = listed["attention"]
    assert gct["attention"] == "gct_blocks:GCT" and gct["options"] == ["epsilon", "mode"]
    assert gct["types"] == {"epsilon": "float", "mode": "str"} and gct["defaults"] == {"epsilon": 1e-05, "mode": "l2"}
    assert gct["display_name"] == "GCT" and gct["from"] == "import path"
    assert heads["required"] == ["heads"] and heads["display_name"] == "gct_blocks:Heads"
    (net,) = listed["backbones"]
    assert net == {
        "backbone": "gct_blocks:vgg4",
        "from": "import path",
        "display_name": "VGG-4",
        "takes": ["in_channels"],
    }
    assert main(["list", "gct_blocks:GCT"]) == 0
    out = capsys.readouterr().out
    assert "epsilon: float = 1e-05" in out and "GCT" in out
    assert main(["list", "gct_blocks:Nope"]) == 2
    assert "has no attribute 'Nope'" in _one_line(capsys)


def test_backbone_entry_point_from_an_installed_distribution(tmp_path, monkeypatch, capsys):
    """A package registering a backbone in the group ``ablation.backbones`` (faked, as for
    attention, by its dist-info folder on sys.path): listed, and trained by its name."""
    site = tmp_path / "site"
    (site / "net_pkg").mkdir(parents=True)
    (site / "net_pkg" / "__init__.py").write_text(
        textwrap.dedent("""
        from torch import nn
        def build(num_classes, attention, in_channels=3):
            return nn.Sequential(nn.Conv2d(in_channels, 8, 3, padding=1), attention(8), nn.AdaptiveAvgPool2d(1),
                                 nn.Flatten(), nn.Linear(8, num_classes))
        build.display_name = "TinyNet"
    """)
    )
    info = site / "net_pkg-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: net-pkg\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[ablation.backbones]\ntinynet = net_pkg:build\n")
    monkeypatch.syspath_prepend(str(site))
    assert main(["list", "--json"]) == 0
    listed = {r["backbone"]: r for r in json.loads(capsys.readouterr().out)["backbones"]}
    assert listed["tinynet"]["from"] == "entry point net_pkg:build (net-pkg)"
    assert listed["tinynet"]["display_name"] == "TinyNet" and listed["tinynet"]["takes"] == ["in_channels"]
    assert listed["resnet20"]["from"] == "ablation"
    assert main(["list"]) == 0
    assert "tinynet" in capsys.readouterr().out
    out = tmp_path / "t.json"
    assert main(["train", "backbone=tinynet", "attention=se", *TINY, "--out", str(out), "--quiet"]) == 0
    assert json.loads(out.read_text())["attention_params"] > 0
    assert main(["train", "backbone=tinynet", "position=pre", *TINY, "--quiet"]) == 2
    assert "'tinynet' does not take ['position']" in _one_line(capsys)


def test_display_names_come_from_the_code_and_must_tell_modules_apart(gct_blocks, tmp_path):
    from ablation.errors import ConfigError
    from ablation.design.space import load_space

    path = _space_file(
        gct_blocks,
        {"attention": ["none", "se", "gct_blocks:GCT", "gct_blocks:Heads"], "heads": [2]},
        backbone="gct_blocks:vgg4",
    )
    assert load_space(path).display_names() == {
        "attention": {"gct_blocks:GCT": "GCT"},
        "backbone": {"gct_blocks:vgg4": "VGG-4"},
    }
    (gct_blocks / "gct_blocks.py").write_text(GCT.replace('display_name = "GCT"', 'display_name = "se"'))
    sys.modules.pop("gct_blocks", None)
    from ablation.attention import ATTENTIONS

    ATTENTIONS.pop("gct_blocks:GCT", None)
    with pytest.raises(ConfigError, match="attention 'se' and 'gct_blocks:GCT' would both show as 'se'"):
        load_space(path)
    ATTENTIONS.pop("gct_blocks:GCT", None)


@pytest.mark.slow
def test_report_tables_and_plots_use_display_names(tmp_path):
    """Labels, tables and figures of a report show what ``sweep.json`` recorded as the display
    names; ``results.csv`` keeps the import paths."""
    from ablation.analysis import plots
    from ablation.analysis.aggregate import aggregate
    from ablation.analysis.report import write_report
    from ablation.analysis.tables import variant_table, with_display_names
    from report_fixtures import study_rows, write_epochs_for, write_run

    rows = study_rows(seeds=(0, 1))
    for r in rows:
        r["attention"] = "gct_blocks:GCT" if r["attention"] == "sca" else "none"
        r["backbone"] = "gct_blocks:vgg4" if r["backbone"] == "mobilenet_v2" else r["backbone"]
        r["variant"] = r["variant"] + "|" + r["attention"] + "|" + r["backbone"]
    run = write_run(tmp_path / "run", rows)
    write_epochs_for(run, rows)
    info = json.loads((run / "sweep.json").read_text())
    info["display_names"] = {"attention": {"gct_blocks:GCT": "GCT"}, "backbone": {"gct_blocks:vgg4": "VGG-4"}}
    (run / "sweep.json").write_text(json.dumps(info))
    out = write_report(run, tmp_path / "report")
    md = (out / "report.md").read_text()
    assert "gct_blocks" not in md and "VGG-4 GCT k=5" in md
    summary = pd.read_csv(out / "summary.csv")
    assert set(summary["label"]) == {
        "VGG-4 GCT k=5",
        "VGG-4 GCT k=7",
        "VGG-4 none",
        "resnet20 GCT k=3",
        "resnet20 GCT k=5",
        "resnet20 none",
    }
    assert set(pd.read_csv(out / "results.csv")["attention"]) == {"none", "gct_blocks:GCT"}
    _, results, epochs = with_display_names(info, pd.read_csv(run / "results.csv"), pd.read_csv(run / "epochs.csv"))
    variants = aggregate(results).assign(nd_rank=0, pareto=False)
    assert set(variant_table(variants, pd.DataFrame())["backbone"]) == {"resnet20", "VGG-4"}
    figure = plots.training_curves(epochs, dict(zip(variants["variant"], variants["label"])))
    titles = {ax.get_title() for ax in figure.axes}
    legends = {t.get_text() for ax in figure.axes for t in ax.get_legend().get_texts()}
    assert "VGG-4: val top-1 %" in titles and "GCT k=5" in legends and not any("gct_blocks" in t for t in legends)


@pytest.mark.slow
def test_an_option_axis_of_one_module_with_the_progress_output_on(gct_blocks):
    """``attention: [none, sca, GCT]`` crossed with GCT's ``mode``: expansion drops ``mode`` from
    none and sca, and Ray's progress reporter (on, as ``ablate sweep`` runs it) asks every trial
    for the column, the leading one (none, by the fake trial's top-1) included. A driver of its
    own, so that Ray starts as the CLI starts it and ships gct_blocks to its workers."""
    path = _space_file(gct_blocks, {"attention": ["none", "sca", "gct_blocks:GCT"], "mode": ["l2", "l1"]})
    driver = textwrap.dedent(f"""
        import json, tempfile
        from pathlib import Path
        from ablation.design.space import load_space
        from ablation.run.sweep import run_sweep

        def trial(cfg, report=None, resume_from=None):
            metrics = {{"epoch": 1, "top1": 90.0 if cfg.attention == "none" else 50.0, "top5": 100.0,
                       "val_loss": 1.0, "train_loss": 1.0, "images_per_s": 1.0, "epoch_time_s": 0.01}}
            with tempfile.TemporaryDirectory() as d:
                Path(d, "state.json").write_text("{{}}")
                report(metrics, d)
            return {{**metrics, "history": [metrics]}}

        outcome = run_sweep(load_space({path!r}), storage={str(gct_blocks / "runs")!r}, trial_fn=trial)
        print("COUNTS", outcome.counts)
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS",)}
    done = subprocess.run(
        [sys.executable, "-c", driver], cwd=gct_blocks, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "COUNTS {'completed': 4}" in done.stdout
    assert "Current best trial" in done.stdout and "'point/mode': None" in done.stdout  # the reporter ran
    info = json.loads((gct_blocks / "runs" / "own" / "sweep.json").read_text())
    assert info["display_names"] == {"attention": {"gct_blocks:GCT": "GCT"}, "backbone": {}}
    table = pd.read_csv(gct_blocks / "runs" / "own" / "results.csv")
    assert sorted(table["mode"].fillna("-")) == ["-", "-", "l1", "l2"]


def test_every_point_tune_gets_carries_the_progress_columns(gct_blocks, tmp_path):
    """The grid's points and the seed searcher's suggestions, for the same space as above."""
    from ablation.design.space import load_space
    from ablation.run.sweep import _search_alg, param_space

    grid = {"attention": ["none", "sca", "gct_blocks:GCT"], "mode": ["l2", "l1"]}
    space = load_space(_space_file(gct_blocks, grid))
    points = param_space(space)["point"]["grid_search"]
    assert len(points) == 4 and all("mode" in p for p in points)
    data = yaml.safe_load((gct_blocks / "space.yaml").read_text())
    data["budget"]["seeds"] = {"min": 2, "max": 3}
    (gct_blocks / "space.yaml").write_text(yaml.safe_dump(data))
    space = load_space(gct_blocks / "space.yaml")
    searcher = _search_alg(space, tmp_path)
    suggested = [searcher.suggest(f"t{i}") for i in range(8)]
    assert all({"mode", "seed"} <= set(s["point"]) for s in suggested)
    assert sorted(str(s["point"]["mode"]) for s in suggested) == ["None"] * 4 + ["l1", "l1", "l2", "l2"]
