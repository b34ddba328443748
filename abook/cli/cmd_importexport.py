"""``abook import FILE`` and ``abook export``: LDIF (CRM-shaped or plain inetOrgPerson) and CRM CSV."""

from __future__ import annotations

import argparse
import os
import sys
import time
from typing import Any, TextIO

from abook.cli.common import config_of, open_store
from abook.errors import UserError
from abook.transfer import PLAIN_ENTITIES, TABLES, export_csv, export_to, import_file
from abook.transfer.progress import Progress


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("import", parents=[common], help="import LDIF or CSV into the store (re-importing changes nothing)")
    p.add_argument("file", help="an LDIF file (CRM-shaped as `abook export` writes it, or plain inetOrgPerson) or a CSV file")
    p.add_argument("--format", choices=("ldif", "csv"), help="default: csv for *.csv files, else ldif")
    p.add_argument("--entity", choices=TABLES,
                   help="CSV: the entity of the rows (default: detected from the columns); plain LDIF: the entity "
                        f"entries become ({', '.join(PLAIN_ENTITIES)}; default [import] plain_ldif_entity)")
    p.add_argument("--owner", metavar="USER",
                   help="user name owning records that name no owner (default: [import] default_owner)")
    p.add_argument("--ignore-unknown-columns", action="store_true",
                   help="CSV: import the columns abook knows and list the others (default: an unknown column "
                        "is an error, so a typo loses nothing)")
    p.set_defaults(func=import_command)

    p = sub.add_parser("export", parents=[common], help="write the store as LDIF, or one entity as CSV",
                       description="Write the store as CRM-shaped LDIF, or one entity as CSV (--format csv, or an "
                                   "-o file named *.csv) in exactly the columns `abook import` reads for it. The "
                                   "LDIF export holds the users' argon2 password hashes (so that importing it "
                                   "rebuilds the store, logins included) unless --without-passwords is given; a CSV "
                                   "export never holds passwords (a systemuser CSV has no hash column; LDIF carries "
                                   "them); a role's read depths, a user's roles and an activity's parties are one "
                                   "cell each, one value a line. A file written with -o is created with mode 0600 (readable by its owner only), "
                                   "whatever the umask.")
    p.add_argument("-o", "--output", default="-", metavar="FILE",
                   help="file to write, mode 0600 (default: standard output)")
    p.add_argument("--format", choices=("ldif", "csv"),
                   help="default: csv when FILE ends in .csv, else ldif")
    p.add_argument("--without-passwords", action="store_true",
                   help="LDIF: leave the users' password hashes out (they then cannot bind after a re-import "
                        "until `abook user passwd`); CSV never holds them")
    p.add_argument("--entity", action="append", choices=TABLES,
                   help="LDIF: export only these (repeat the option; default: everything); CSV: the one entity "
                        "to write (required, exactly once)")
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
                             default_owner=args.owner or options.default_owner, progress=Progress(),
                             ignore_unknown_columns=args.ignore_unknown_columns)
    finally:
        store.dispose()
    seconds = time.monotonic() - started
    print(f"imported {args.file}: {result.total} records ({result.added} added, {result.changed} changed, "
          f"{result.unchanged} unchanged; {result.skipped} other entries skipped) in {seconds:.1f} s")
    if result.export:
        print(f"read as {'an' if result.export.startswith('O') else 'a'} {result.export} contacts export")
    if result.ignored_columns:
        print(f"columns not imported (no field in abook): {', '.join(result.ignored_columns)}")
    return 0


def export_command(args: argparse.Namespace) -> int:
    fmt = args.format or ("csv" if args.output.lower().endswith(".csv") else "ldif")
    if fmt == "csv" and len(args.entity or ()) != 1:
        given = "none" if not args.entity else ", ".join(args.entity)
        print(f"abook: a CSV export holds one entity: give --entity exactly once, one of {', '.join(TABLES)} "
              f"(given: {given})", file=sys.stderr)
        return 2
    config = config_of(args)
    store = open_store(config)
    try:
        if fmt == "csv":
            return _export_csv(store, args.output, args.entity[0])
        tables = args.entity or TABLES
        passwords = not args.without_passwords
        if args.output == "-":
            result = export_to(store, sys.stdout, suffix=config.ldap.suffix, tables=tables, passwords=passwords)
        else:
            with open_private(args.output) as out:
                result = export_to(store, out, suffix=config.ldap.suffix, tables=tables, passwords=passwords)
    finally:
        store.dispose()
    summary = ", ".join(f"{n} {t}" for t, n in result.counts.items())
    print(f"exported {sum(result.counts.values())} records ({summary})", file=sys.stderr)
    if result.password_hashes:
        where = "keep it private" if args.output == "-" else f"{args.output} is readable by its owner only (mode 0600)"
        print(f"the export holds {result.password_hashes} password hashes: {where}, "
              "or export --without-passwords", file=sys.stderr)
    return 0


def _export_csv(store: Any, output: str, table: str) -> int:
    if output == "-":
        count = export_csv(store, sys.stdout, table)
    else:
        with open_private(output) as out:
            count = export_csv(store, out, table)
    print(f"exported {count} records ({count} {table}) as CSV", file=sys.stderr)
    return 0


def open_private(path: str) -> TextIO:
    """``path`` opened for writing text with mode 0600: created so, or an existing file truncated and made so
    before anything is written to it (the umask only ever narrows a new file's mode, never an old one's)."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as e:
        raise UserError(f"{path}: cannot write: {e.strerror}") from None
    try:
        os.fchmod(fd, 0o600)
    except OSError as e:
        os.close(fd)
        raise UserError(f"{path}: cannot make it private (mode 0600): {e.strerror}") from None
    return os.fdopen(fd, "w", encoding="utf-8", newline="\n")
