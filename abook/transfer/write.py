"""The writing half of an import (``load.Loader``): rows already resolved and checked become batched INSERTs
and UPDATEs, parents before children, and each role's privileges, user's roles and activity's parties are
made exactly what the file gives. A record equal to the stored one is not written at all."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Iterable, Sequence

from abook.passwords import hash_password, verify_password
from abook.store.bulk import BATCH, TableIO
from abook.transfer import fields
from abook.transfer.fields import KEEP_IF_ABSENT, SPECS, comparable
from abook.transfer.ldif import LdifError
from abook.transfer.parse import Row


def _chunks(seq: Sequence[Any], size: int = BATCH) -> Iterable[Sequence[Any]]:
    for i in range(0, len(seq), size):
        yield seq[i:i + size]


class Writes:
    """Mixed into ``Loader``, whose resolving fills ``rows`` and ``existing``."""

    io: TableIO
    rows: dict[str, dict[str, Row]]
    existing: dict[str, dict[str, Any]]
    now: datetime
    progress: Any

    def error(self, line: int, msg: str) -> LdifError:
        raise NotImplementedError

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
