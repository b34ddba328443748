"""CSV files -> ``Row`` values: one entity per file, with the CRM's column names, or a contacts export from
Outlook or Google Contacts (``csv_formats.py``).

* The delimiter is the one of ``,`` ``;`` and tab that the header uses most (Excel writes ``;`` in many
  locales). UTF-8, with or without a BOM.
* The entity is ``--entity``, else the id column's (``contactid``, ``businessunitid``, ``roleid``, ...),
  else guessed from the other columns; an Outlook or Google export is contacts.
* Column names are the CRM's (``abook export`` writes the same names, ``transfer/fields.py``) or the
  attributes LDAP publishes (``mail``, ``sn``, ...). A role's ``readdepth``, a user's ``roleid`` and an
  activity's ``party`` hold one value a line, as LDIF repeats them (``LISTS``); the cell is the whole list.
  A column abook does not know is an error that names it (a typo would otherwise lose its data) unless the
  import was asked to ignore unknown columns; a header in which no column is known says so. Only the
  columns present are written.
* A row is identified by its id column, else by its primary email; rows of an Outlook or Google export
  without an email by their name.
"""

from __future__ import annotations

import csv
import io
import itertools
from dataclasses import dataclass, field
from typing import Any, Iterator

from abook.store.enums import EMAIL_FIELDS
from abook.transfer import fields
from abook.transfer.csv_formats import COLUMNS, LEAD_COLUMNS, export_kind, first_value
from abook.transfer.fields import BY_NAME, BadValue
from abook.transfer.ldif import LdifError
from abook.transfer.parse import PUBLISHED, NameRef, Row, derived_id

#: columns holding several values, one a line, as LDIF gives them in repeated attributes: a role's read
#: depths (``contact=organisation``), a user's role ids, an activity's parties (``required|ann@x|contact|<id>|Ann``)
LISTS: dict[str, str] = {"role": "readdepth", "systemuser": "roleid", "activity": "party"}
#: id column -> entity, referenced tables last: a user's or queue's file has a businessunitid column too
ID_COLUMNS = {f"{t}id": t for t in reversed(fields.TABLES)}
DELIMITERS = ",;\t"


@dataclass
class CsvReport:
    """What reading a CSV file found out, for the import's summary."""

    entity: str = ""
    #: "Outlook", "Google" or "Outlook or Google" for a contacts export; "" for CRM columns
    export: str = ""
    #: columns whose values were not imported (unknown, and allowed to be; an export's extra columns)
    ignored: set[str] = field(default_factory=set)


def detect_entity(names: list[str]) -> str:
    """The entity of a file from its lowercased column names."""
    for column, table in ID_COLUMNS.items():
        if column in names:
            return table
    if "parentbusinessunitid" in names:
        return "businessunit"
    if "domainname" in names:
        return "systemuser"
    if "companyname" in names or "subject" in names:
        return "lead"
    if "name" in names and "firstname" not in names and "lastname" not in names:
        return "account"
    return "contact"


def article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _delimiter(line: str) -> str:
    best = max(DELIMITERS, key=line.count)  # ties: the first, the comma
    return best if line.count(best) else ","


def _nothing_known(file: str, header: list[str], table: str) -> LdifError:
    shown = ", ".join(repr(h.strip()) for h in header[:6]) + (", ..." if len(header) > 6 else "")
    return LdifError(file, 1, f"no column is one abook knows for {article(table)} {table} (the header has {shown}): "
                              "expected the CRM's column names (firstname, lastname, emailaddress1, ...; see the "
                              "README, \"CSV columns\") or an Outlook or Google contacts export")


def _unknown(file: str, table: str, names: list[str]) -> LdifError:
    listed = ", ".join(repr(n) for n in names)
    return LdifError(file, 1, f"unknown column{'s' if len(names) > 1 else ''} {listed}: not {article(table)} "
                              f"{table} column (a typo would lose its values); --ignore-unknown-columns imports "
                              "the other columns")


def read_csv(stream: io.TextIOBase, file: str, entity: str | None, report: CsvReport,
             ignore_unknown: bool = False) -> Iterator[Row]:
    first = stream.readline()
    if not first:
        return
    reader = csv.reader(itertools.chain([first], stream), delimiter=_delimiter(first))
    try:
        header = next(reader)
    except csv.Error as e:
        raise LdifError(file, 1, f"not valid CSV: {e}") from None
    names = [h.strip().lower() for h in header]
    export = export_kind(names) if entity in (None, "contact", "lead") else None
    table = entity or ("contact" if export else detect_entity(names))
    report.entity, report.export = table, export or ""
    foreign = (LEAD_COLUMNS if table == "lead" else COLUMNS) if export else {}
    id_column = f"{table}id"
    by_name = BY_NAME[table]
    published = PUBLISHED.get(table, {})
    columns: list[tuple[int, str, Any]] = []  # (index, kind, spec)
    unknown: list[tuple[int, str]] = []
    for i, (h, low) in enumerate(zip(header, names)):
        mapped = foreign.get(low)
        if not low:
            continue
        if low == id_column:
            columns.append((i, "id", None))
        elif low == LISTS.get(table):
            columns.append((i, "list", None))
        elif mapped == "company" and table == "contact":
            columns.append((i, "company", None))
        elif mapped is not None and mapped in by_name:
            columns.append((i, "crm", by_name[mapped]))
        elif low in by_name and low != "userpassword":
            columns.append((i, "crm", by_name[low]))
        elif low in published and "." not in published[low]:
            columns.append((i, "crm", by_name[published[low]]))
        else:
            unknown.append((i, h.strip()))
    if not columns:
        raise _nothing_known(file, header, table)
    if unknown and not export:
        if not ignore_unknown:
            raise _unknown(file, table, [h for _i, h in unknown])
        report.ignored.update(h for _i, h in unknown)
        unknown = []  # listed already, whatever they hold
    primary = EMAIL_FIELDS.get(table, ("",))[0]
    end = 1
    while True:
        start = end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            raise LdifError(file, reader.line_num, f"not valid CSV: {e}") from None
        end = reader.line_num
        if not any(c.strip() for c in cells):
            continue
        if len(cells) > len(header):
            raise LdifError(file, start, f"{len(cells)} cells, but the header names {len(header)} columns")
        for i, h in unknown:  # an export's columns abook has no field for: listed when they hold something
            if i < len(cells) and cells[i].strip():
                report.ignored.add(h)
        row = Row(table, "", start, {})
        record_id = None
        for i, kind, spec in columns:
            text = cells[i].strip() if i < len(cells) else ""
            if export:
                text = first_value(text)
            try:
                if kind == "id":
                    record_id = fields.parse_id(text) if text else None
                elif kind == "list":
                    _list(row, [v.strip() for v in text.splitlines() if v.strip()])
                elif kind == "company":
                    row.account_name = text or None
                elif spec.kind == "id" and text:
                    try:
                        row.values[spec.column] = fields.parse_id(text)
                    except BadValue:
                        row.values[spec.column] = NameRef(text)
                else:
                    row.values.setdefault(spec.column, fields.parse_value(spec, text))
            except BadValue as e:
                raise LdifError(file, start, f"{header[i].strip()}: {e}") from None
        row.id = record_id or _derived(file, start, table, row, primary, id_column, bool(export))
        yield row


def _list(row: Row, values: list[str]) -> None:
    """A list column's values onto the row: the whole truth, so an empty cell means none."""
    if row.table == "role":
        row.privileges = dict(fields.parse_depth(v) for v in values)
    elif row.table == "systemuser":
        row.roles = [fields.parse_id(v) for v in values]
    else:
        row.parties = [fields.parse_party(v) for v in values]


def _derived(file: str, line: int, table: str, row: Row, primary: str, id_column: str, export: bool) -> str:
    """The id of a row without one: from its primary email, or (contacts exports) its name."""
    email = row.values.get(primary) if primary else None
    if email:
        return derived_id(f"{table}:{email.lower()}")
    name = " ".join(str(row.values.get(f) or "") for f in ("fullname", "firstname", "middlename", "lastname")).split()
    if export and name:
        return derived_id(f"{table}:name:{' '.join(name).lower()}|{(row.account_name or '').lower()}")
    needs = f"{article(id_column)} {id_column} (a GUID)" + (f" or {article(primary)} {primary}" if primary else "")
    raise LdifError(file, line, f"a row needs {needs} to be identified by")
