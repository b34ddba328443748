"""The ``abook`` command. Each module of this package named ``cmd_*`` adds its subcommands.

A module defines ``register(subparsers, common)``: it adds parsers whose ``func(args) -> int`` runs the
command. ``common`` is a parent parser carrying ``-c/--config``. UserErrors print one line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from abook.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default="abook.toml", help="the TOML config file (default: %(default)s)")
    parser = argparse.ArgumentParser(prog="abook", description="CRM address books, mail tracking and sync")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as e:
        for line in str(e).splitlines() or [""]:  # a config file's problems: one line each
            print(f"abook: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
