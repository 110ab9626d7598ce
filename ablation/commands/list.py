"""`ablate list`: the attention modules (shipped and installed by packages) and backbones."""
from __future__ import annotations

import argparse

HELP = "list attention modules (with their options) and backbones, including those installed packages register"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def run(args: argparse.Namespace) -> int:
    import json

    from ..attention.external import ENTRY_POINT_GROUP, entry_points
    from ..attention.registry import attention_options, known_names
    from ..models import BACKBONES

    points = entry_points()
    rows = [{"attention": name, "options": sorted(attention_options(name)),
             "from": f"entry point {points[name].value} ({points[name].dist.name if points[name].dist else '?'})"
             if name in points else "ablation"} for name in known_names()]
    if args.json:
        print(json.dumps({"attention": rows, "backbones": list(BACKBONES)}, indent=2))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="attention modules (also: any import path package.module:Class)")
    for column in ("attention", "options", "from"):
        table.add_column(column)
    for row in rows:
        table.add_row(row["attention"], ", ".join(row["options"]) or "-", row["from"])
    console = Console()
    console.print(table)
    console.print(f"backbones: {', '.join(BACKBONES)} (also: any import path package.module:build)")
    console.print(f"installed packages register modules in the entry-point group {ENTRY_POINT_GROUP!r}")
    return 0
