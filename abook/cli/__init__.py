"""The ``abook`` command. Each module of this package named ``cmd_*`` adds its subcommands.

A module defines ``register(subparsers, common)``: it adds parsers whose ``func(args) -> int`` runs the
command. ``common`` is a parent parser carrying ``-c/--config``; every parser has it (the top level, each
command group and each action), so ``-c`` works before or after the action. It has no argparse default
(an action's default would replace a value given before it): ``main`` fills it in from ``ABOOK_CONFIG``,
else ``./abook.toml``. UserErrors print one line, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from typing import Sequence

from abook import __version__
from abook.config.location import CONFIG_ENV, DEFAULT_CONFIG, config_file
from abook.errors import UserError


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", metavar="FILE", default=argparse.SUPPRESS,
                        help=f"the TOML config file (default: ${CONFIG_ENV}, else {DEFAULT_CONFIG} in the "
                             "current directory)")
    parser = argparse.ArgumentParser(prog="abook", parents=[common],
                                     description="CRM address books over LDAP, email tracking and routing")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("cmd_"):
            importlib.import_module(f"{__name__}.{info.name}").register(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.config = config_file(getattr(args, "config", None))
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
