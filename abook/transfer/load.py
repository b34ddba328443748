"""Write parsed Rows into the store in one transaction: resolve, check, then insert or update in batches.

Everything that can be wrong with a file (a duplicate id, a reference to nothing, a missing name, an
unknown owner) is found before the first write and reported as ``FILE:LINE: what is wrong``; a failure
after that rolls the whole transaction back, so an import never lands half-way. Writes are ordinary
batched INSERT and UPDATE statements (``executemany``), so database triggers (the search index) see them;
every statement is ``store/bulk.py``'s.
A record equal to the stored one is not written at all: re-importing a file changes nothing, not even
``modifiedon``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Iterable, Sequence

from twisted.logger import Logger

from abook.passwords import hash_password, verify_password
from abook.store.bulk import BATCH, TableIO
from abook.store.enums import USER_OWNED
from abook.store.keys import utcnow
from abook.transfer import fields
from abook.transfer.fields import KEEP_IF_ABSENT, SPECS, TABLES, comparable
from abook.transfer.ldif import LdifError
from abook.transfer.parse import NameRef, Row, derived_id

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


def _chunks(seq: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


class Loader:
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

    # -- writing --------------------------------------------------------------------------------------

    def _write(self, table: str) -> tuple[int, int, int]:
        defaults = fields.defaults(table)
        required = [s for s in SPECS[table] if not s.nullable and defaults.get(s.column) is None
                    and s.column not in ("createdon", "modifiedon")]
        existing = self.existing[table]
        inserts: list[dict[str, Any]] = []
        updates: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        unchanged: set[str] = set()
        for row in self.rows[table].values():
            ex = existing.get(row.id)
            if ex is None:
                values = {**defaults, **{k: v for k, v in row.values.items() if v is not None}}
                values["id"] = row.id
                if "createdon" in defaults:
                    values["createdon"] = values.get("createdon") or self.now
                    values["modifiedon"] = values.get("modifiedon") or values["createdon"]
                if row.password:
                    values["password_hash"] = hash_password(row.password)
                for s in required:
                    if values.get(s.column) is None:
                        raise self.error(row.line, f"a {table} needs {s.name}")
                inserts.append(values)
                continue
            new = dict(row.values)
            if row.full:
                for col, default in defaults.items():
                    if col not in new and col not in KEEP_IF_ABSENT:
                        new[col] = default
            for col, default in defaults.items():
                if new.get(col, 0) is None and default is not None:
                    new[col] = default
            if row.password and not verify_password(ex["password_hash"], row.password):
                new["password_hash"] = hash_password(row.password)
            for s in required:
                if s.column in new and new[s.column] is None:
                    raise self.error(row.line, f"a {table} needs {s.name}")
            if all(comparable(ex[c]) == comparable(v) for c, v in new.items()):
                unchanged.add(row.id)
                continue
            if "modifiedon" in defaults and "modifiedon" not in row.values:
                new["modifiedon"] = self.now
            new["_id"] = row.id
            updates.setdefault(tuple(sorted(new)), []).append(new)
        inserts.sort(key=lambda v: v["id"])  # key order: the primary key index is filled in order, fewer page splits
        inserts = self._parents_first(table, inserts)
        for chunk in _chunks(inserts):
            self.io.insert(table, chunk)
            self._advance(len(chunk))
        n_updated = 0
        for cols, batch in updates.items():
            for chunk in _chunks(batch):
                self.io.update(table, cols, chunk)
                self._advance(len(chunk))
                n_updated += len(chunk)
        self._advance(len(unchanged))
        touched: set[str] = set()
        if table == "role":
            touched = self._write_privileges()
        elif table == "systemuser":
            touched = self._write_user_roles()
        elif table == "activity":
            touched = self._write_parties()
        moved = len(touched & unchanged)
        return len(inserts), n_updated + moved, len(unchanged) - moved

    def _advance(self, n: int) -> None:
        if self.progress is not None and n:
            self.progress.advance(n)

    def _parents_first(self, table: str, inserts: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Order inserts of a self-referencing table (business units, accounts) so parents come first."""
        self_ref = [s.column for s in SPECS[table] if s.target == table]
        if not self_ref or len(inserts) < 2:
            return inserts
        col = self_ref[0]
        by_id = {v["id"]: v for v in inserts}
        done: set[str] = set()
        out: list[dict[str, Any]] = []
        for v in inserts:
            chain = []
            cur: dict[str, Any] | None = v
            while cur is not None and cur["id"] not in done:
                if cur in chain:
                    raise self.error(self.rows[table][cur["id"]].line, f"the {table} parent chain loops")
                chain.append(cur)
                cur = by_id.get(cur.get(col) or "")
            for item in reversed(chain):
                done.add(item["id"])
                out.append(item)
        return out

    def _write_privileges(self) -> set[str]:
        return self._sync_children("roleprivilege", "role_id", "entity", "read_depth",
                                   {r.id: r.privileges for r in self.rows["role"].values() if r.privileges is not None})

    def _write_user_roles(self) -> set[str]:
        return self._sync_children("systemuser_roles", "systemuser_id", "role_id", None,
                                   {r.id: dict.fromkeys(r.roles) for r in self.rows["systemuser"].values()
                                    if r.roles is not None})

    def _write_parties(self) -> set[str]:
        """Make each activity's parties exactly those its record gives (in order); the activities changed."""
        wanted = {r.id: [(fields.PARTY_MASKS[role], address, kind, rid, name) for role, address, kind, rid, name in r.parties]
                  for r in self.rows["activity"].values() if r.parties is not None}
        have = self.io.parties(list(wanted))
        touched = {aid for aid, want in wanted.items() if have.get(aid, []) != want}
        for chunk in _chunks(sorted(touched)):
            self.io.delete_in("activityparty", "activity_id", chunk)
        adds = [dict(activity_id=aid, participationtypemask=m, addressused=a, party_type=k, party_id=i, display_name=n)
                for aid in sorted(touched) for m, a, k, i, n in wanted[aid]]
        for chunk in _chunks(adds):
            self.io.insert("activityparty", chunk)
        return touched

    def _sync_children(self, table: str, parent: str, key: str, value: str | None,
                       wanted: dict[str, dict[str, Any]]) -> set[str]:
        """Make the child rows of each parent exactly ``wanted[parent]`` (key -> value); the parents changed."""
        have = self.io.children(table, parent, key, value, list(wanted))
        dels, adds, touched = [], [], set()
        for pid, want in wanted.items():
            cur = have.get(pid, {})
            if cur == want:
                continue
            touched.add(pid)
            dels += [(pid, k) for k, v in cur.items() if k not in want or want[k] != v]
            adds += [{parent: pid, key: k, **({value: v} if value else {})}
                     for k, v in want.items() if k not in cur or cur[k] != v]
        for chunk in _chunks(dels):
            self.io.delete_pairs(table, parent, key, chunk)
        for chunk in _chunks(adds):
            self.io.insert(table, chunk)
        return touched
