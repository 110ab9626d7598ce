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
TINY = ["dataset=synthetic:size=8,channels=1,classes=2,train=64,val=32", "batch_size=32", "epochs=1",
        "latency_runs=1", "device=cpu", "threads=1"]
BAD = '''
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
'''


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
    assert main(["profile", "--backbone", "resnet20", "--attention", "my_blocks:SimAM", "--option", "e_lambda=0.01",
                 "--small-input", "--input-size", "16", "--no-latency", "--json"]) == 0
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
    from ablation.profile import attention_modules

    model = build_model("my_blocks:tiny_net", "se", num_classes=3, in_channels=1)
    assert len(attention_modules(model)) == 2 and model(torch.randn(2, 1, 8, 8)).shape == (2, 3)
    out = tmp_path / "trial.json"
    assert main(["train", "backbone=my_blocks:tiny_net", "attention=my_blocks:SimAM", *TINY, "--out", str(out),
                 "--quiet"]) == 0
    assert json.loads(out.read_text())["attention_params"] == 0


@pytest.mark.parametrize("argv, words", [
    (["attention=nope_pkg.blocks:Gate"], ["nope_pkg.blocks:Gate", "cannot import module 'nope_pkg.blocks'",
                                          "ModuleNotFoundError"]),
    (["attention=bad_blocks:Missing"], ["'bad_blocks' has no attribute 'Missing'", "Shrink"]),
    (["attention=bad_blocks:NOT_CALLABLE"], ["not callable"]),
    (["attention=bad_blocks:no_channels"], ["no channels argument", "(channels, **options)"]),
    (["attention=bad_blocks:explodes"], ["cannot be built", "RuntimeError: kaboom"]),
    (["attention=bad_blocks:not_a_module"], ["returned str, not a torch.nn.Module"]),
    (["attention=bad_blocks:Shrink"], ["output (2, 4, 5, 6) for input (2, 8, 5, 6)", "keep the shape"]),
    (["attention=my_blocks:SimAM", "lam=0.1"], ["unknown key(s) ['lam']", "its options: ['e_lambda']"]),
    (["backbone=my_blocks:tiny_net", "position=pre"], ["'my_blocks:tiny_net' does not take ['position']",
                                                       "in_channels"]),
    (["backbone=my_blocks:SimAM"], ["must take ['num_classes', 'attention']"]),
])
def test_each_mistake_is_one_clear_line_with_exit_2(example, bad_blocks, capsys, argv, words):
    assert main(["train", *argv, *TINY, "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    for word in words:
        assert word in err, (word, err)


def test_space_errors_name_the_key_path(example, bad_blocks, tmp_path, capsys):
    space = {"name": "bad", "base": {"dataset": "digits"}, "budget": {"epochs": 1},
             "grid": [{"attention": ["se", "bad_blocks:Shrink"], "seed": [0]}]}
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
    from ablation.space import parse_space

    space = parse_space({"name": "mix", "budget": {"epochs": 1},
                         "grid": {"attention": ["none", "my_blocks:SimAM"], "e_lambda": [0.1, 0.2], "seed": [0]}})
    configs = space.configs()
    assert len(configs) == 3  # none once, SimAM twice
    assert sorted(c.attention_kwargs().get("e_lambda", 0) for c in configs) == [0, 0.1, 0.2]


def test_entry_point_module_from_an_installed_distribution(tmp_path, monkeypatch, capsys):
    """A package registering a module in the group ``ablation.attention`` (a distribution faked
    by its dist-info folder on sys.path, as pip would install it)."""
    site = tmp_path / "site"
    (site / "gate_pkg").mkdir(parents=True)
    (site / "gate_pkg" / "__init__.py").write_text(textwrap.dedent('''
        from torch import nn
        class Gate(nn.Module):
            def __init__(self, channels, scale=1.0):
                super().__init__()
                self.scale = scale
            def forward(self, x):
                return x * self.scale
    '''))
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
    driver = textwrap.dedent(f'''
        import sys
        sys.path.insert(0, {str(EXAMPLE)!r})
        import my_blocks
        sys.path.remove({str(EXAMPLE)!r})
        from ablation.space import load_space
        from ablation.sweep import _runtime_env, run_sweep
        space = load_space({str(tmp_path / "space.yaml")!r})
        print("PY_MODULES", _runtime_env(space).get("py_modules"))
        outcome = run_sweep(space, storage={str(tmp_path / "runs")!r}, verbose=0)
        print("COUNTS", outcome.counts)
    ''')
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "PYTHONPATH")}
    done = subprocess.run([sys.executable, "-c", driver], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"PY_MODULES ['{EXAMPLE / 'my_blocks'}']" in done.stdout
    assert "COUNTS {'completed': 5}" in done.stdout
    table = pd.read_csv(tmp_path / "runs" / "byo_block" / "results.csv")
    simam = table[table["attention"] == "my_blocks:SimAM"]
    assert sorted(simam["e_lambda"]) == [0.0001, 0.01] and simam["ray_node"].notna().all()
    assert set(simam["uncounted_ops"]) == {"aten::pow x9"}


def test_report_lists_the_ops_counted_as_zero(tmp_path):
    from ablation.report import write_report
    from report_fixtures import study_rows, write_run

    rows = study_rows(seeds=(0, 1))
    for r in rows:
        r["uncounted_ops"] = "aten::pow x9" if r["kernel_size"] == 5 else ""
    md = (write_report(write_run(tmp_path / "run", rows), tmp_path / "report") / "report.md").read_text()
    block = md[md.index("## FLOPs not counted"):]
    assert "lower bounds" in block and "aten::pow x9" in block.split("##")[1]
    assert block.split("##")[1].count("aten::pow x9") == 2  # the k=5 variant of each backbone, once
