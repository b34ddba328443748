"""``abook import FILE`` and ``abook export``: LDIF (CRM-shaped or plain inetOrgPerson) and CRM CSV."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from abook.cli.common import config_of, open_store
from abook.transfer import PLAIN_ENTITIES, TABLES, export_to, import_file
from abook.transfer.progress import Progress


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common], help="import LDIF or CSV into the store (re-importing changes nothing)")
    p.add_argument("file", help="an LDIF file (CRM-shaped as `abook export` writes it, or plain inetOrgPerson) or a CSV file")
    p.add_argument("--format", choices=("ldif", "csv"), help="default: csv for *.csv files, else ldif")
    p.add_argument("--entity", choices=TABLES,
                   help="CSV: the entity of the rows (default: detected from the columns); plain LDIF: the entity "
                        f"entries become ({', '.join(PLAIN_ENTITIES)}; default [import] plain_ldif_entity)")
    p.add_argument("--owner", help="user name owning records that name no owner (default [import] default_owner)")
    p.set_defaults(func=import_command)

    p = sub.add_parser("export", parents=[common], help="write the store as LDIF")
    p.add_argument("-o", "--output", default="-", help="file to write (default: standard output)")
    p.add_argument("--entity", action="append", choices=TABLES,
                   help="export only these (repeat the option); default: everything")
    p.set_defaults(func=export_command)


def import_command(args: argparse.Namespace) -> int:
    config = config_of(args)
    options = config.import_
    if args.entity and args.format != "csv" and not args.file.lower().endswith(".csv") \
            and args.entity not in PLAIN_ENTITIES:
        print(f"abook: --entity for plain LDIF must be one of {', '.join(PLAIN_ENTITIES)}", file=sys.stderr)
        return 2
    store = open_store(config)
    started = time.monotonic()
    try:
        result = import_file(store, args.file, fmt=args.format, entity=args.entity,
                             plain_entity=options.plain_ldif_entity,
                             default_owner=args.owner or options.default_owner, progress=Progress())
    finally:
        store.dispose()
    seconds = time.monotonic() - started
    print(f"imported {args.file}: {result.total} records ({result.added} added, {result.changed} changed, "
          f"{result.unchanged} unchanged; {result.skipped} other entries skipped) in {seconds:.1f} s")
    if result.ignored_columns:
        print(f"ignored columns: {', '.join(result.ignored_columns)}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = open_store(config)
    tables = args.entity or TABLES
    try:
        if args.output == "-":
            counts = export_to(store, sys.stdout, suffix=config.ldap.suffix, tables=tables)
        else:
            with open(args.output, "w", encoding="utf-8", newline="\n") as out:
                counts = export_to(store, out, suffix=config.ldap.suffix, tables=tables)
    finally:
        store.dispose()
    summary = ", ".join(f"{n} {t}" for t, n in counts.items())
    print(f"exported {sum(counts.values())} records ({summary})", file=sys.stderr)
    return 0
