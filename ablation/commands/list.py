"""`ablate list [NAME ...]`: the attention modules and backbones (shipped, installed by packages,
or named by import path) with their options."""

from __future__ import annotations

import argparse
from typing import Any

HELP = (
    "list attention modules (with their options) and backbones, including those installed packages register; "
    "or describe the ones named (e.g. an import path my_blocks:SimAM)"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help="describe only these: attention or backbone names, or import paths package.module:Class",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _attention_row(name: str) -> dict[str, Any]:
    from ..external import origin
    from ..attention.registry import ATTENTIONS, attention_options, display, option_defaults
    from ..errors import ConfigError

    try:
        options = sorted(attention_options(name))
    except ConfigError as exc:  # an installed package's module that does not load: say so, list the rest
        return {"attention": name, "options": [], "from": origin(name), "display_name": name, "error": str(exc)}
    spec = ATTENTIONS[name]
    defaults = option_defaults(name)
    return {
        "attention": name,
        "options": options,
        "from": origin(name),
        "display_name": display(name),
        "required": sorted(spec.required),
        "types": {k: t.__name__ for k, t in sorted(spec.types.items())},
        "defaults": {k: defaults[k] for k in options if k in defaults},
    }


def _backbone_row(name: str) -> dict[str, Any]:
    from ..external import BACKBONE_GROUP, origin
    from ..errors import ConfigError
    from ..models import BACKBONES, backbone_display, positions
    from ..external import OPTIONAL, backbone_parameters

    if name in BACKBONES:
        return {"backbone": name, "from": "ablation", "display_name": name, "positions": list(positions(name))}
    try:
        takes = sorted(p for p in backbone_parameters(name) if p in OPTIONAL)
        return {
            "backbone": name,
            "from": origin(name, BACKBONE_GROUP),
            "display_name": backbone_display(name),
            "takes": takes,
        }
    except ConfigError as exc:
        return {
            "backbone": name,
            "from": origin(name, BACKBONE_GROUP),
            "display_name": name,
            "takes": [],
            "error": str(exc),
        }


def _is_backbone(name: str) -> bool:
    """A backbone: shipped, registered in ``ablation.backbones``, or a callable taking
    ``num_classes`` and ``attention`` (what a backbone is called with)."""
    import inspect

    from ..external import BACKBONE_GROUP, entry_points, is_import_path, load_callable
    from ..models import BACKBONES

    if name in BACKBONES or (name in entry_points(BACKBONE_GROUP) and name not in entry_points()):
        return True
    if not is_import_path(name):
        return False
    try:
        params = inspect.signature(load_callable(name, "attention or backbone")).parameters
    except (TypeError, ValueError):
        return False
    return {"num_classes", "attention"} <= set(params)


def run(args: argparse.Namespace) -> int:
    import json

    from ..external import BACKBONE_GROUP, ENTRY_POINT_GROUP, entry_points
    from ..attention.registry import known_names
    from ..errors import ConfigError
    from ..models import BACKBONES

    if args.names:
        backbones = [_backbone_row(n) for n in args.names if _is_backbone(n)]
        attention = [_attention_row(n) for n in args.names if not _is_backbone(n)]
        failed = [r for r in attention + backbones if "error" in r]
        if failed:
            raise ConfigError(failed[0]["error"])
    else:
        attention = [_attention_row(name) for name in known_names()]
        backbones = [
            _backbone_row(name) for name in (*BACKBONES, *sorted(set(entry_points(BACKBONE_GROUP)) - set(BACKBONES)))
        ]
    if args.json:
        print(json.dumps({"attention": attention, "backbones": backbones}, indent=2, default=str))
        return 0
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if attention:
        table = Table(
            title="attention modules" + ("" if args.names else " (also: any import path package.module:Class)")
        )
        for column in ("attention", "options", "from", "shown as"):
            table.add_column(column)
        for row in attention:
            table.add_row(
                row["attention"], row.get("error") or _options_text(row) or "-", row["from"], _shown(row, "attention")
            )
        console.print(table)
    if backbones:
        table = Table(title="backbones" + ("" if args.names else " (also: any import path package.module:build)"))
        for column in ("backbone", "takes", "from", "shown as"):
            table.add_column(column)
        for row in backbones:
            takes = row.get("error") or (
                f"position: {', '.join(row['positions'])}"
                if "positions" in row
                else ", ".join(["num_classes", "attention", *row["takes"]])
            )
            table.add_row(row["backbone"], takes, row["from"], _shown(row, "backbone"))
        console.print(table)
    if not args.names:
        console.print(
            f"installed packages register attention modules in the entry-point group {ENTRY_POINT_GROUP!r} "
            f"and backbones in {BACKBONE_GROUP!r}",
            markup=False,
        )
    return 0


def _shown(row: dict[str, Any], kind: str) -> str:
    """The display name where it differs from the name, else empty."""
    return row["display_name"] if row["display_name"] != row[kind] else ""


def _options_text(row: dict[str, Any]) -> str:
    """``e_lambda: float = 0.0001, heads: int (required)``: each option with its type and default."""
    parts = []
    for name in row["options"]:
        kind = row.get("types", {}).get(name)
        text = name + (f": {kind}" if kind else "")
        if name in row.get("required", []):
            text += " (required)"
        elif name in row.get("defaults", {}):
            text += f" = {row['defaults'][name]!r}"
        parts.append(text)
    return ", ".join(parts)
