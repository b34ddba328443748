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
* A role's read depths (``readdepth``), a user's roles (``roleid``) and an activity's parties (``party``)
  are one cell each, one value a line, written as LDIF writes them (``csv_rows.LISTS``).
"""

from __future__ import annotations

import csv
from typing import TYPE_CHECKING, Any, Iterator, Mapping, TextIO

from abook.store.bulk import TableIO
from abook.transfer import fields
from abook.transfer.csv_rows import LISTS
from abook.transfer.fields import SPECS, FieldSpec

if TYPE_CHECKING:
    from sqlalchemy import Connection

#: rows written per owner-name lookup
CHUNK = 500


def csv_columns(table: str) -> list[tuple[str, FieldSpec | None]]:
    """(header, spec) of each column of ``table``'s CSV: the id column, the table's columns, then the list
    column (``LISTS``) if the table has one; the id and list columns have no spec."""
    listed = [(LISTS[table], None)] if table in LISTS else []
    return [(f"{table}id", None)] + [(s.name, s) for s in SPECS[table] if s.column != "password_hash"] + listed


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
        specs = [s for _h, s in columns if s is not None]
        for chunk in self._chunks():
            self._learn_owners(chunk)
            lists = self._lists([r["id"] for r in chunk])
            writer.writerows([[row["id"], *self._cells(specs, row), *lists(row["id"])] for row in chunk])
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

    def _lists(self, ids: list[str]) -> Any:
        """record id -> [its list cell] for the records of a chunk, or -> [] for a table without one."""
        if self.table == "role":
            depths = self.io.children("roleprivilege", "role_id", "entity", "read_depth", parents=ids)
            return lambda i: ["\n".join(fields.format_depth(e, depths[i][e]) for e in fields.DEPTH_ENTITIES
                                        if e in depths.get(i, {}))]
        if self.table == "systemuser":
            roles = self.io.children("systemuser_roles", "systemuser_id", "role_id", None, parents=ids)
            return lambda i: ["\n".join(sorted(roles.get(i, {})))]
        if self.table == "activity":
            parties = self.io.parties(ids)
            return lambda i: ["\n".join(fields.format_party(*p) for p in parties.get(i, ()))]
        return lambda i: []

    def _cells(self, specs: list[FieldSpec], row: Mapping[str, Any]) -> list[str]:
        cells = []
        for spec in specs:
            value = row[spec.column]
            if value is None or value == "":
                cells.append("")
            elif spec.column == "owner_id":
                cells.append(self._user_names.get(value) or value)
            else:
                cells.append(fields.format_value(spec, value))
        return cells
