"""Import and export: LDIF (the published tree plus CRM fields, or plain inetOrgPerson) and CRM CSV.

``import_file`` reads and checks the whole file first (streaming, with line numbers), then writes it in one
transaction (``load.Loader``); ``export_to`` writes CRM-shaped LDIF (``export.Exporter``), ``export_csv`` one
entity's rows in the CSV import's columns (``csv_export.CsvExporter``). All take a
``Store`` and run in the calling thread: they are for ``abook import`` / ``abook export`` and tests.
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any, Sequence, TextIO

from abook.errors import UserError
from abook.store import Store
from abook.transfer.csv_export import CsvExporter
from abook.transfer.export import Exporter
from abook.transfer.fields import TABLES
from abook.transfer.ldif import read_ldif
from abook.transfer.load import ImportResult, Loader
from abook.transfer.csv_rows import CsvReport, read_csv
from abook.transfer.parse import PLAIN_ENTITIES, RecordParser, Row

__all__ = ["ImportResult", "import_file", "export_to", "export_csv", "TABLES", "PLAIN_ENTITIES"]


def read_rows(path: Path, fmt: str | None = None, entity: str | None = None, plain_entity: str = "contact",
              progress: Any = None, ignore_unknown: bool = False) -> tuple[list[Row], int, CsvReport | None]:
    """Parse and check every record of a file: (rows, records skipped, what reading a CSV found out)."""
    fmt = fmt or ("csv" if path.suffix.lower() == ".csv" else "ldif")
    name = path.name
    try:
        size = os.path.getsize(path)
        stream = open(path, "rb")
    except OSError as e:
        raise UserError(f"{path}: cannot read: {e.strerror}") from None
    if progress is not None:
        progress.phase("reading", size, " bytes")
    rows: list[Row] = []
    with stream:
        if fmt == "csv":
            report = CsvReport()
            text = io.TextIOWrapper(stream, encoding="utf-8-sig", newline="")
            try:
                for row in read_csv(text, name, entity, report, ignore_unknown):
                    rows.append(row)
            except UnicodeDecodeError:
                raise UserError(f"{name}: not UTF-8 text") from None
            if progress is not None:
                progress.advance(size)
            return rows, 0, report
        parser = RecordParser(name, entity or plain_entity)
        for record in read_ldif(stream, name, progress):
            row = parser.parse(record)
            if row is not None:
                rows.append(row)
        return rows, parser.skipped, None


def import_file(store: Store, path: str | Path, *, fmt: str | None = None, entity: str | None = None,
                plain_entity: str = "contact", default_owner: str = "admin", progress: Any = None,
                ignore_unknown_columns: bool = False) -> ImportResult:
    path = Path(path)
    rows, skipped, report = read_rows(path, fmt, entity, plain_entity, progress, ignore_unknown_columns)
    with store.transaction() as session:
        added, changed, unchanged = Loader(session, path.name, default_owner, progress).load(rows)
    if progress is not None:
        progress.finish()
    ignored = tuple(sorted(report.ignored)) if report else ()
    return ImportResult(added, changed, unchanged, skipped, ignored, report.export if report else "")


def _snapshot(store: Store) -> Any:
    """A connection reading one snapshot for every table."""
    options = {"isolation_level": "REPEATABLE READ"} if store.dialect == "postgresql" else {}
    return store.engine.connect().execution_options(**options)


def export_csv(store: Store, out: TextIO, table: str) -> int:
    """Write one table as CSV in the columns ``abook import --format csv`` reads (never a password hash);
    returns the records written."""
    with _snapshot(store) as conn:
        return CsvExporter(conn, table).write(out)


def export_to(store: Store, out: TextIO, *, suffix: str = "o=crm", tables: Sequence[str] = TABLES,
              passwords: bool = True) -> Exporter:
    """Write the store (or the given tables) as LDIF, users' password hashes included unless ``passwords``
    is false; returns the exporter, whose ``counts`` are the records written per table and
    ``password_hashes`` the hashes written."""
    with _snapshot(store) as conn:
        exporter = Exporter(conn, suffix, tables, passwords)
        for chunk in exporter.chunks():
            out.write(chunk)
    return exporter
