"""`ablate` command line: one sub-command per module in ``ablation.commands``.

Each command module defines ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``.
User errors (bad config, missing files) print one clear line and exit 2, with no traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from .errors import AblationError

COMMANDS: tuple[str, ...] = ("profile", "train", "validate", "sweep", "report", "plan", "list")


def _load(name: str):
    try:
        return importlib.import_module(f"ablation.commands.{name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"ablation.commands.{name}":
            return None
        raise


def build_parser(command: Optional[str] = None) -> argparse.ArgumentParser:
    """The ``ablate`` parser with the arguments of sub-command ``command`` only (none when None, as
    for ``ablate --help``): others import torch for their choices, which would slow down every
    start."""
    parser = argparse.ArgumentParser(prog="ablate", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        module = _load(name)
        if module is None:
            continue
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        if command == name:
            module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())  # as `python -m` does: users' modules next to their space files import
    args = build_parser(argv[0] if argv and argv[0] in COMMANDS else None).parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except AblationError as exc:
        print(f"ablate {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"ablate {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
