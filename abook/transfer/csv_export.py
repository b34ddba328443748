"""The store -> one entity's CSV (``abook export --format csv --entity X``), in exactly the columns
``abook import --format csv`` reads for that entity, so that exporting, importing the file into a fresh
store and exporting again gives the same bytes.

* A header row, then one row per record in id order, streamed (the table is read in chunks, never whole).
  RFC 4180 as Python's ``csv`` module writes it: comma-separated, CRLF line ends, fields quoted when they
  hold a comma, a quote or a line break (quotes doubled); UTF-8 without a BOM.
* Columns: the id column (``contactid``, ``systemuserid``, ...) and then every column of the table under its
  CRM name (``transfer/fields.py``), values written as the LDIF export writes them (times as
  ``20261202141636Z``, flags ``TRUE``/``FALSE``). References are ids, except the owner (``ownerid``), which
  is the owning user's name (``domainname``), as a person writing the file by hand gives it.
* Never a password: the CSV import reads no hash column, so a user's CSV row has none (LDIF carries them).
* What CSV cannot say is left out, as the CSV import cannot read it: a role's read depths, a user's roles
  and an activity's parties travel in LDIF only.
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Iterator, Mapping, TextIO

from abook.store.bulk import TableIO
from abook.transfer import fields
from abook.transfer.fields import SPECS, FieldSpec

if TYPE_CHECKING:
    from sqlalchemy import Connection

#: rows written per owner-name lookup
CHUNK = 500


def csv_columns(table: str) -> list[tuple[str, FieldSpec | None]]:
    """(header, spec) of each column of ``table``'s CSV; the id column has no spec."""
    return [(f"{table}id", None)] + [(s.name, s) for s in SPECS[table] if s.column != "password_hash"]


class CsvExporter:
    def __init__(self, conn: Connection, table: str) -> None:
        self.io = TableIO(conn)
        self.table = table
        self.count = 0
        self._user_names: dict[str, str] = {}

    def write(self, out: TextIO) -> int:
        """Write the header and every record to ``out``; returns the records written."""
        columns = csv_columns(self.table)
        writer = csv.writer(out, lineterminator="\r\n")
        writer.writerow([h for h, _s in columns])
        for chunk in self._chunks():
            self._learn_owners(chunk)
            writer.writerows([self._cells(columns, row) for row in chunk])
            self.count += len(chunk)
        return self.count

    def _chunks(self) -> Iterator[list[Mapping[str, Any]]]:
        chunk: list[Mapping[str, Any]] = []
        for row in self.io.scan(self.table):
            chunk.append(row)
            if len(chunk) == CHUNK:
                yield chunk
                chunk = []
        if chunk:
            yield chunk

    def _learn_owners(self, chunk: list[Mapping[str, Any]]) -> None:
        if not any(s.column == "owner_id" for s in SPECS[self.table]):
            return
        unknown = {r["owner_id"] for r in chunk if r["owner_id"]} - self._user_names.keys()
        if unknown:
            self._user_names.update(self.io.values_of("systemuser", "domainname", sorted(unknown)))

    def _cells(self, columns: list[tuple[str, FieldSpec | None]], row: Mapping[str, Any]) -> list[str]:
        cells = []
        for _h, spec in columns:
            if spec is None:
                cells.append(row["id"])
                continue
            value = row[spec.column]
            if value is None or value == "":
                cells.append("")
            elif spec.column == "owner_id":
                cells.append(self._user_names.get(value) or value)
            else:
                cells.append(fields.format_value(spec, value))
        return cells
