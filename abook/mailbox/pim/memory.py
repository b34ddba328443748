"""An in-memory mailbox (vdirsyncer's ``MemoryStorage``): the contract's reference, for tests and benchmarks.

Besides the ``IPimStore`` methods it offers what a person or a misbehaving server does to a mailbox, so
tests can mutate the other side: ``user_create`` / ``user_update`` / ``user_delete``, ``touch`` (a new
change key for the same content, as Exchange gives an item that is merely opened), ``move`` (the item
gets a new id, as a folder move without immutable ids does), ``fail_next`` (the next writes fail),
``forget_tokens`` (every sync token becomes invalid). ``calls`` records every operation by name.

A recurring appointment (``user_create(..., rrule="FREQ=WEEKLY;COUNT=5")``) is stored once, with its
deleted occurrences (``user_delete_occurrence``) and modified ones (``user_update_occurrence``), and listed
as its occurrences in the window of ``series.py``, as the other backends list theirs.
"""

from __future__ import annotations

import itertools
import threading
import uuid
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Callable, Optional

from zope.interface import implementer

from abook.mailbox.errors import CursorInvalid, Unavailable
from abook.mailbox.pim.interfaces import Changes, IPimStore, Item, ItemGone, ItemRejected, Listed, StaleItem
from abook.mailbox.pim import series
from abook.mailbox.pim.schema import FIELDS, Values, normalise, parse_when, when_text

ENTITIES = ("contact", "appointment", "task")
WRITES = frozenset({"create", "update", "delete"})


@dataclass
class _Stored:
    values: dict[str, Optional[str]]
    etag: str
    seq: int
    crm_id: Optional[str] = None
    categories: tuple[str, ...] = ()
    uid: Optional[str] = None
    created: int = 0
    #: a recurring series: its RRULE value, deleted occurrences and modified ones (recurrence id -> values)
    rrule: Optional[str] = None
    exdates: set[str] = field(default_factory=set)
    overrides: dict[str, dict[str, Optional[str]]] = field(default_factory=dict)


@dataclass
class Failure:
    op: str  # create / update / delete / any
    error: Exception
    times: int = 1
    item_id: Optional[str] = None


@implementer(IPimStore)
class MemoryMailbox:
    entities = ENTITIES

    def __init__(self, *, date_only_tasks: bool = False, clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 horizon_days: int = series.HORIZON_DAYS, lookback_days: int = series.LOOKBACK_DAYS) -> None:
        self.items: dict[str, dict[str, _Stored]] = {e: {} for e in ENTITIES}
        #: (deleted at, id, created at): like a real server, a delta reports a delete only for an item that
        #: existed when the token was issued (created and deleted in between, it never existed for it)
        self._deleted: dict[str, list[tuple[int, str, int]]] = {e: [] for e in ENTITIES}
        self._seq = itertools.count(1)
        self._last = 0
        self._epoch = 1
        self._lock = threading.Lock()
        self.calls: list[str] = []
        self.failures: list[Failure] = []
        #: like Exchange: a task's start and due are dates only
        self.date_only_tasks = date_only_tasks
        self.clock = clock
        self.horizon_days = horizon_days
        self.lookback_days = lookback_days

    # -- IPimStore

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        with self._lock:
            self.calls.append("changes")
            self._maybe_fail("changes", None)
            items = self.items[entity]
            win = self._window(entity)
            extra = {series.FROM_KEY: win.day} if win is not None else {}
            day = f"@{win.day}" if win is not None else ""
            if token is not None and win is not None and not token.endswith(day):
                token = None  # a new day: list everything, so occurrences that came into the window appear
            if token is None:
                listed = tuple(x for i, s in items.items() for x in self._listed(entity, i, s, win))
                return Changes(listed, (), self._token() + day, complete=True, extra=extra)
            epoch, _, since_text = token.partition("@")[0].partition(":")
            if epoch != str(self._epoch) or not since_text.isdigit():
                raise CursorInvalid("the sync token is no longer valid")
            since = int(since_text)
            changed = tuple(x for i, s in items.items() if s.seq > since for x in self._listed(entity, i, s, win))
            deleted = tuple(i for seq, i, created in self._deleted[entity]
                            if seq > since and created <= since and i not in items)
            # a changed series: its occurrences are listed again in full (series.drop_series)
            deleted += tuple(i for i, s in items.items() if s.seq > since and s.rrule)
            return Changes(changed, deleted, self._token() + day, extra=extra)

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        with self._lock:
            self.calls.append("get")
            self._maybe_fail("get", None)
            out = []
            for i in ids:
                series_id, rid = series.split_id(i)
                s = self.items[entity].get(series_id)
                if s is not None and rid is not None and s.rrule:
                    out += [it for it in self._occurrences(series_id, s, self._window(entity)) if it.id == i]
                elif s is not None and rid is None:
                    out.append(Item(i, s.etag, dict(s.values), s.crm_id, s.categories, s.uid))
            return out

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        with self._lock:
            self.calls.append("create")
            self._maybe_fail("create", None)
            projected = self.project(entity, values)
            item_id = f"{entity[:1]}-{uuid.uuid4().hex[:12]}"
            uid = projected.get("uid") if entity == "appointment" else None
            seq = self._next()
            s = _Stored(projected, self._etag(), seq, crm_id, (), uid, seq)
            self.items[entity][item_id] = s
            if notify:
                self.calls.append("invite")
            return Listed(item_id, s.etag)

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        with self._lock:
            self.calls.append("update")
            self._maybe_fail("update", item_id)
            series_id, rid = series.split_id(item_id)
            if rid is not None:
                return self._update_occurrence(entity, series_id, rid, etag, values)
            s = self.items[entity].get(item_id)
            if s is None:
                raise ItemGone(f"{entity} {item_id} is gone")
            if s.etag != etag:
                raise StaleItem(f"{entity} {item_id} changed since it was read")
            s.values = self.project(entity, {**s.values, **values})
            if crm_id is not None:
                s.crm_id = crm_id
            s.etag, s.seq = self._etag(), self._next()
            return Listed(item_id, s.etag)

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        with self._lock:
            self.calls.append("delete")
            self._maybe_fail("delete", item_id)
            series_id, rid = series.split_id(item_id)
            if rid is not None:
                self._delete_occurrence(entity, series_id, rid)
                return
            s = self.items[entity].pop(item_id, None)
            if s is not None:
                self._deleted[entity].append((self._next(), item_id, s.created))
                if notify:
                    self.calls.append("cancel")

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        with self._lock:
            self.calls.append("find")
            for i, s in self.items[entity].items():
                if s.crm_id == crm_id:
                    return Listed(i, s.etag)
            return None

    def project(self, entity: str, values: Values) -> dict[str, Optional[str]]:
        out = normalise(entity, values)
        if entity == "task" and self.date_only_tasks:
            for name in ("startdate", "duedate"):
                if out[name]:
                    out[name] = out[name][:10]  # type: ignore[index]
        return out

    def close_blocking(self) -> None:
        self.calls.append("close")

    # -- what people and servers do

    def user_create(self, entity: str, values: Values, categories: tuple[str, ...] = (), *,
                    crm_id: Optional[str] = None, uid: Optional[str] = None, rrule: Optional[str] = None) -> str:
        with self._lock:
            item_id = f"{entity[:1]}-{uuid.uuid4().hex[:12]}"
            stored = self.project(entity, values)
            if entity == "appointment":
                uid = uid or stored.get("uid") or f"{uuid.uuid4()}@mailbox"
                stored["uid"] = uid
            seq = self._next()
            self.items[entity][item_id] = _Stored(stored, self._etag(), seq, crm_id, categories, uid, seq, rrule)
            return item_id

    def user_update_occurrence(self, item_id: str, rid: str, changes: Values) -> None:
        """Modify one occurrence of a series (an exception; ``changes`` may move it: ``when``)."""
        with self._lock:
            s = self.items["appointment"][item_id]
            current = s.overrides.get(rid) or self._occurrence_values(s, rid)
            s.overrides[rid] = self.project("appointment", {**current, **changes})
            s.etag, s.seq = self._etag(), self._next()

    def user_delete_occurrence(self, item_id: str, rid: str) -> None:
        with self._lock:
            self._delete_occurrence("appointment", item_id, rid)

    def occurrences(self, item_id: str) -> dict[str, dict[str, Optional[str]]]:
        """A series' occurrences in the window as listed: occurrence id -> values."""
        with self._lock:
            s = self.items["appointment"][item_id]
            return {it.id: dict(it.values) for it in self._occurrences(item_id, s, self._window("appointment"))}

    def user_update(self, entity: str, item_id: str, changes: Values,
                    categories: Optional[tuple[str, ...]] = None) -> None:
        with self._lock:
            s = self.items[entity][item_id]
            s.values = self.project(entity, {**s.values, **changes})
            if categories is not None:
                s.categories = categories
            s.etag, s.seq = self._etag(), self._next()

    def user_delete(self, entity: str, item_id: str) -> None:
        with self._lock:
            s = self.items[entity].pop(item_id)
            self._deleted[entity].append((self._next(), item_id, s.created))

    def touch(self, entity: str, item_id: str) -> None:
        """A new change key, same content (Exchange Online bumps it when an item is opened)."""
        with self._lock:
            s = self.items[entity][item_id]
            s.etag, s.seq = self._etag(), self._next()

    def move(self, entity: str, item_id: str) -> str:
        """The item comes back under a new id (a move between folders without immutable ids)."""
        with self._lock:
            s = self.items[entity].pop(item_id)
            self._deleted[entity].append((self._next(), item_id, s.created))
            new_id = f"{entity[:1]}-{uuid.uuid4().hex[:12]}"
            seq = self._next()
            self.items[entity][new_id] = replace(s, etag=self._etag(), seq=seq, created=seq)
            return new_id

    def forget_tokens(self) -> None:
        with self._lock:
            self._epoch += 1

    def fail_next(self, op: str, error: Exception | None = None, times: int = 1, item_id: Optional[str] = None) -> None:
        self.failures.append(Failure(op, error or Unavailable(f"{op} failed (test)"), times, item_id))

    def writes(self) -> list[str]:
        return [c for c in self.calls if c in WRITES]

    def values(self, entity: str) -> dict[str, dict[str, Optional[str]]]:
        return {i: dict(s.values) for i, s in self.items[entity].items()}

    # -- recurring series

    def _window(self, entity: str) -> Optional[series.Window]:
        if entity != "appointment":
            return None
        return series.window(self.clock(), self.horizon_days, self.lookback_days)

    def _listed(self, entity: str, item_id: str, s: _Stored, win: Optional[series.Window]) -> list[Listed]:
        if s.rrule and win is not None and s.values.get("when"):
            return [Listed(it.id, it.etag) for it in self._occurrences(item_id, s, win)]
        return [Listed(item_id, s.etag)]

    def _occurrence_values(self, s: _Stored, rid: str) -> dict[str, Optional[str]]:
        start, end = parse_when(s.values["when"])  # type: ignore[arg-type]
        original = series.parse_rid(rid)
        return {**s.values, "when": when_text(original, original + (end - start)),  # type: ignore[operator]
                "uid": series.occurrence_uid(s.uid, rid)}

    def _occurrences(self, item_id: str, s: _Stored, win: Optional[series.Window]) -> list[Item]:
        assert s.rrule and win is not None and s.values.get("when")
        start, end = parse_when(s.values["when"])  # type: ignore[arg-type]
        out = []
        for rid, _, _ in series.expand(s.rrule, start, end, s.values.get("timezone"), win, s.exdates):
            values = s.overrides.get(rid) or self._occurrence_values(s, rid)
            out.append(Item(series.occurrence_id(item_id, rid), series.content_etag(values, s.categories), values,
                            None, s.categories, values.get("uid")))
        return out

    def _update_occurrence(self, entity: str, series_id: str, rid: str, etag: str, values: Values) -> Listed:
        s = self.items[entity].get(series_id)
        win = series.covering(self._window(entity), rid)  # type: ignore[arg-type]
        found = [it for it in self._occurrences(series_id, s, win)
                 if it.id == series.occurrence_id(series_id, rid)] if s is not None and s.rrule else []
        if not found or s is None:
            raise ItemGone(f"{entity} {series_id} has no occurrence {rid}")
        if found[0].etag != etag:
            raise StaleItem(f"{entity} {series_id} occurrence {rid} changed since it was read")
        if not values:
            return Listed(found[0].id, etag)  # an occurrence carries no CRM id of its own
        s.overrides[rid] = self.project(entity, {**found[0].values, **values})
        s.etag, s.seq = self._etag(), self._next()
        return Listed(found[0].id, series.content_etag(s.overrides[rid], s.categories))

    def _delete_occurrence(self, entity: str, series_id: str, rid: str) -> None:
        s = self.items[entity].get(series_id)
        if s is None or rid in s.exdates:
            return
        s.exdates.add(rid)
        s.overrides.pop(rid, None)
        s.etag, s.seq = self._etag(), self._next()

    # -- inside

    def _maybe_fail(self, op: str, item_id: Optional[str]) -> None:
        for f in self.failures:
            if f.times > 0 and f.op in (op, "any") and (f.item_id is None or f.item_id == item_id):
                f.times -= 1
                if f.times == 0:
                    self.failures.remove(f)
                raise f.error

    def _next(self) -> int:
        self._last = next(self._seq)
        return self._last

    def _token(self) -> str:
        return f"{self._epoch}:{self._last}"

    @staticmethod
    def _etag() -> str:
        return uuid.uuid4().hex[:16]


__all__ = ["MemoryMailbox", "ItemRejected", "FIELDS"]
