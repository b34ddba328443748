"""Write parsed Rows into the store in one transaction: resolve, check, then insert or update in batches.

Everything that can be wrong with a file (a duplicate id, a reference to nothing, a missing name, an
unknown owner) is found before the first write and reported as ``FILE:LINE: what is wrong``; a failure
after that rolls the whole transaction back, so an import never lands half-way. Writes are ordinary
batched INSERT and UPDATE statements (``executemany``), so database triggers (the search index) see them;
every statement is ``store/bulk.py``'s. This module resolves and checks; ``write.py`` writes.
A record equal to the stored one is not written at all: re-importing a file changes nothing, not even
``modifiedon``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from abook.store.bulk import TableIO
from abook.store.enums import USER_OWNED
from abook.store.keys import utcnow
from abook.transfer.fields import SPECS, TABLES
from abook.transfer.ldif import LdifError
from abook.transfer.parse import NameRef, Row, derived_id
from abook.transfer.write import Writes

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

#: how a reference given by name (CSV) finds its record: table -> name columns tried in order
NAME_COLUMNS: dict[str, tuple[str, ...]] = {
    "systemuser": ("domainname", "fullname"),
    "account": ("name",),
    "businessunit": ("name",),
    "role": ("name",),
    "contact": ("fullname",),
}
#: columns unique (case-insensitively) across a table
UNIQUE: dict[str, str] = {"systemuser": "domainname", "role": "name"}


@dataclass(frozen=True)
class ImportResult:
    added: int
    changed: int
    unchanged: int
    skipped: int = 0
    #: CSV columns whose values were not imported
    ignored_columns: tuple[str, ...] = ()
    #: CSV: "Outlook", "Google" or "Outlook or Google" for a contacts export read as CRM columns
    export: str = ""

    @property
    def total(self) -> int:
        return self.added + self.changed + self.unchanged


class Loader(Writes):
    log = Logger()

    def __init__(self, session: Session, file: str, default_owner: str = "admin",
                 progress: Any = None, now: datetime | None = None) -> None:
        self.session = session
        self.io = TableIO(session.connection())
        self.file = file
        self.default_owner = default_owner
        self.progress = progress
        self.now = now or utcnow()
        self.rows: dict[str, dict[str, Row]] = {t: {} for t in TABLES}
        self.existing: dict[str, dict[str, Any]] = {t: {} for t in TABLES}
        self._owner: tuple[str, str] | None = None

    def error(self, line: int, msg: str) -> LdifError:
        return LdifError(self.file, line, msg)

    # -- the whole run --------------------------------------------------------------------------------

    def load(self, rows: list[Row]) -> tuple[int, int, int]:
        self._match_plain_dns(rows)
        self._resolve_account_names(rows)
        for row in rows:
            seen = self.rows[row.table].get(row.id)
            if seen is not None:
                what = f"the DN {row.plain_dn!r}" if row.plain_dn else f"{row.table} {row.id}"
                raise self.error(row.line, f"{what} appears twice (line {seen.line} and here)")
            self.rows[row.table][row.id] = row
        for table in TABLES:
            self._load_existing(table)
        self._fill_fullnames()
        self._check_unique()
        self._resolve_names()
        self._fill_ownership()
        self._check_references()
        if self.progress is not None:
            self.progress.phase("writing", sum(len(rows) for rows in self.rows.values()), " records")
        added = changed = unchanged = 0
        cache = self.io.grow_sqlite_cache()
        try:
            for table in TABLES:
                a, c, u = self._write(table)
                added, changed, unchanged = added + a, changed + c, unchanged + u
        finally:
            if cache is not None:
                self.io.restore_sqlite_cache(cache)
        self.log.info("imported {file}: {added} added, {changed} changed, {unchanged} unchanged",
                      file=self.file, added=added, changed=changed, unchanged=unchanged)
        return added, changed, unchanged

    # -- resolving ------------------------------------------------------------------------------------

    def _match_plain_dns(self, rows: list[Row]) -> None:
        """A plain contact upserts by DN: take the id of the contact imported from that DN before."""
        plain = [r for r in rows if r.plain_dn is not None and r.table == "contact"]
        by_dn = {dn: i for i, dn in self.io.pairs_in("contact", "source_dn", [r.plain_dn for r in plain])}
        if by_dn:
            for r in plain:
                r.id = by_dn.get(r.plain_dn, r.id)  # type: ignore[arg-type]

    def _resolve_account_names(self, rows: list[Row]) -> None:
        """A contact's company (``o``) links it to the account of that name, created if there is none."""
        wanted = [r for r in rows if r.table == "contact" and r.account_name and not r.values.get("parentcustomer_id")]
        if not wanted:
            return
        by_name = {str(r.values.get("name", "")).lower(): r.id for r in rows if r.table == "account"}
        missing = sorted({r.account_name.lower() for r in wanted} - by_name.keys())  # type: ignore[union-attr]
        for i, name in self.io.pairs_in("account", "name", missing, folded=True, by_id=True):
            by_name.setdefault(name, i)
        derived = {derived_id(f"account:{name}"): name for name in missing if name not in by_name}
        for i in self.io.ids_in("account", list(derived)):  # created by an earlier import (SQLite lower() is ASCII)
            by_name[derived[i]] = i
        created: dict[str, Row] = {}
        for r in wanted:
            key = r.account_name.lower()  # type: ignore[union-attr]
            if key not in by_name:
                account = Row("account", derived_id(f"account:{key}"), r.line,
                              {"name": r.account_name})
                created[key] = account
                by_name[key] = account.id
            r.values["parentcustomer_id"] = by_name[key]
        rows.extend(created.values())

    def _load_existing(self, table: str) -> None:
        self.existing[table].update(self.io.rows_in(table, list(self.rows[table])))

    def _fill_fullnames(self) -> None:
        """A CSV person without a full name gets "first last" (what LDAP shows as its cn), so that every
        record has one and an export always carries cn. Only when the row gives a name part or is new:
        an update of other columns keeps the stored full name."""
        for table in ("contact", "lead", "systemuser"):
            existing = self.existing[table]
            for row in self.rows[table].values():
                v = row.values
                if row.full or row.plain_dn is not None or v.get("fullname"):
                    continue
                if row.id in existing and not ({"firstname", "lastname"} & v.keys()):
                    continue
                merged = {**(existing.get(row.id) or {}), **v}
                name = " ".join(p for p in (merged.get("firstname"), merged.get("lastname")) if p)
                if table == "systemuser":
                    name = name or merged.get("domainname") or ""
                if name:
                    v["fullname"] = name

    def _check_unique(self) -> None:
        for table, column in UNIQUE.items():
            seen: dict[str, Row] = {}
            for row in self.rows[table].values():
                value = row.values.get(column)
                if not value:
                    continue
                other = seen.setdefault(value.lower(), row)
                if other is not row:
                    raise self.error(row.line, f"{column} {value!r} is already used at line {other.line}")
            for i, name in self.io.pairs_in(table, column, list(seen), folded=True):
                row = seen[name]
                if i != row.id and i not in self.rows[table]:
                    raise self.error(row.line, f"{column} {row.values[column]!r} belongs to another {table} "
                                     f"in the store ({i})")

    def _find_by_name(self, table: str, name: str, line: int, label: str = "") -> str:
        key = name.lower()
        for column in NAME_COLUMNS.get(table, ()):
            found = {r.id for r in self.rows[table].values() if str(r.values.get(column) or "").lower() == key}
            found |= self.io.ids_named(table, column, key)
            if len(found) == 1:
                return found.pop()
            if len(found) > 1:
                raise self.error(line, f"{label}{name!r} names {len(found)} {table} records; give the id instead")
        raise self.error(line, f"{label}{name!r} names no {table} in the file or the store")

    def _resolve_names(self) -> None:
        cache: dict[tuple[str, str], str] = {}
        for table in TABLES:
            specs = {s.column: s for s in SPECS[table]}
            for row in self.rows[table].values():
                for col, value in row.values.items():
                    if isinstance(value, NameRef):
                        target = specs[col].target or ""
                        key = (target, value.name.lower())
                        if key not in cache:
                            cache[key] = self._find_by_name(target, value.name, row.line, f"{specs[col].name}: ")
                        row.values[col] = cache[key]

    def _owner_of(self, line: int) -> tuple[str, str]:
        """The default owner (config ``[import] default_owner``): (user id, business unit id)."""
        if self._owner is None:
            user_id = self._find_by_name_or_fail(line)
            self._owner = (user_id, self._user_bu(user_id))
        return self._owner

    def _find_by_name_or_fail(self, line: int) -> str:
        try:
            return self._find_by_name("systemuser", self.default_owner, line)
        except LdifError:
            raise self.error(line, f"this record needs an owner and the default owner {self.default_owner!r} is "
                             f"no user in the file or the store (set [import] default_owner or pass --owner)") from None

    def _user_bu(self, user_id: str) -> str:
        row = self.rows["systemuser"].get(user_id)
        if row is not None and row.values.get("business_unit_id"):
            return row.values["business_unit_id"]  # type: ignore[no-any-return]
        ex = self.existing["systemuser"].get(user_id)
        if ex is not None:
            return ex["business_unit_id"]  # type: ignore[no-any-return]
        return self.io.value_of("systemuser", "business_unit_id", user_id, missing="")  # type: ignore[no-any-return]

    def _fill_ownership(self) -> None:
        bu_of: dict[str, str] = {}
        for table in (*USER_OWNED, "activity"):
            existing = self.existing[table]
            for row in self.rows[table].values():
                v = row.values
                if not v.get("owner_id"):
                    if row.id in existing:
                        v.pop("owner_id", None)
                        if not v.get("owningbusinessunit_id"):
                            v.pop("owningbusinessunit_id", None)
                        continue
                    v["owner_id"], bu = self._owner_of(row.line)
                    v.setdefault("owningbusinessunit_id", bu)
                if not v.get("owningbusinessunit_id"):
                    owner = v["owner_id"]
                    if owner not in bu_of:
                        bu_of[owner] = self._user_bu(owner)
                    v["owningbusinessunit_id"] = bu_of[owner] or None
        for table in ("queue", "equipment", "systemuser"):
            for row in self.rows[table].values():
                if row.values.get("business_unit_id") or row.id in self.existing[table]:
                    if not row.values.get("business_unit_id"):
                        row.values.pop("business_unit_id", None)
                    continue
                if table == "systemuser":
                    raise self.error(row.line, "a user needs a businessunitid")
                row.values["business_unit_id"] = self._owner_of(row.line)[1]

    def _check_references(self) -> None:
        wanted: dict[str, dict[str, tuple[Row, str]]] = {t: {} for t in TABLES}
        for table in TABLES:
            refs = [s for s in SPECS[table] if s.target in wanted]
            for row in self.rows[table].values():
                for s in refs:
                    target_id = row.values.get(s.column)
                    if target_id and target_id not in self.rows[s.target]:  # type: ignore[index]
                        wanted[s.target].setdefault(target_id, (row, s.name))  # type: ignore[index]
                for role_id in row.roles or ():
                    if role_id not in self.rows["role"]:
                        wanted["role"].setdefault(role_id, (row, "roleid"))
        for target, ids in wanted.items():
            found = self.io.ids_in(target, list(ids))
            for target_id, (row, name) in ids.items():
                if target_id not in found:
                    raise self.error(row.line, f"{name} {target_id} names no {target} in the file or the store")
