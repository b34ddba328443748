"""``StoreDirectory``: the ``IDirectory`` the LDAP server searches, over the SQL store.

A search walks the *segments* its base and scope select, in tree order: the suffix entry, then per
address book its ``ou`` entry and its records. Container entries are matched in memory; records come
from one SQL query per batch (filter + visibility, LIMIT in the database), converted to ``Entry``
values on the pool thread and sent on the reactor thread.

Visibility (decided per search, in SQL): a bound user sees a book's records that are listed for them
(``store.security.listed``: readable, active, with a primary email); in the Contacts book with
``synchronised`` matching only those in their local data filter (owner scope + ``local_filter_ldap``).
A book they may not read shows as empty. Anonymous connections see the container entries (the fixed
shape of the tree) and the records of the books in ``spec.anonymous_books``, nothing else.

Limits: the size limit stops the query in the database (LIMIT n+1 tells whether more exist) and ends
with sizeLimitExceeded (4). Simple paged results use keyset pagination on (sort keys, id): the cookie
names the segment, the last entry's key and a hash of the request (a cookie from another search is
refused with unwillingToPerform). Unpaged searches without a small size limit stream in keyset batches.
Server-side sort works on any served attribute within one book; sorting a search that spans several
books answers sortResult unwillingToPerform (53) and returns the entries unsorted (16 for an unknown
attribute). Cancelling the Deferred (abandon, time limit) interrupts the running statement.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Callable, Sequence

from ldaptor import ldapfilter
from ldaptor.protocols.ldap import ldaperrors
from sqlalchemy import and_, func, literal, or_, select
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from abook.directory import filters
from abook.directory.api import BASE, ONE_LEVEL, Entry, IDirectory, SearchDone, SearchSpec
from abook.directory.entries import EntityView, Selection, canonical, container_entry, selection, view
from abook.directory.tree import BOOKS, BadDN, Tree
from abook.store import Store, search_index, security
from abook.store.directory import Interrupt, fetch_txn
from abook.store.models import EMAIL_FIELDS, ReadDepth, State

SIZE_LIMIT_EXCEEDED = 4
NO_SUCH_ATTRIBUTE = 16
UNWILLING_TO_PERFORM = 53
_CASE_IGNORE_ORDERING = {"caseignoreorderingmatch", "2.5.13.3"}
_HIGH = "\U0010ffff"  # sorts after every value: entries without the sort attribute come last
_COOKIE_VERSION = b"1"


@dataclass(frozen=True)
class _Segment:
    kind: str  # "root", "ou" or "records"
    book: str | None = None
    record_id: str | None = None  # records: only this record (a base DN naming an entry)


@implementer(IDirectory)
class StoreDirectory:
    """Searches the store as one LDAP tree (``tree``), ``batch_size`` rows per database call."""

    log = Logger()

    def __init__(self, store: Store, tree: Tree | None = None, batch_size: int = 500) -> None:
        self.store = store
        self.tree = tree or Tree()
        self.batch_size = batch_size
        self._root_attrs = _root_attributes(self.tree)

    def search(self, spec: SearchSpec, send_entry: Callable[[Entry], None]) -> defer.Deferred:
        return _Search(self, spec, send_entry).start()

    def root_attributes(self) -> dict[str, tuple[str, ...]]:
        return self._root_attrs


def _root_attributes(tree: Tree) -> dict[str, tuple[str, ...]]:
    ava = tree.suffix_dn.listOfRDNs[0].split()[0]
    kind, value = ava.attributeType, ava.value
    classes = {"o": ("top", "organization"), "dc": ("top", "dcObject", "organization"),
               "ou": ("top", "organizationalUnit")}.get(kind.lower(), ("top", "extensibleObject"))
    attrs: dict[str, tuple[str, ...]] = {"objectClass": classes, kind: (value,)}
    if kind.lower() == "dc":
        attrs["o"] = (value,)
    return attrs


def _book_attributes(book: str) -> dict[str, tuple[str, ...]]:
    return {"objectClass": ("top", "organizationalUnit"), "ou": (book,)}


@lru_cache(maxsize=256)
def _parsed_local_filter(text: str) -> Any:
    try:
        return ldapfilter.parseFilter(text)
    except (ldapfilter.InvalidLDAPFilter, ValueError):
        return None


@lru_cache(maxsize=2048)
def _compiled(entity: str, dialect: str, keyed: "_Keyed") -> filters.Pred:
    """Compiled filters are immutable SQL expressions: the same filter compiles once."""
    return filters.Compiler(view(entity), dialect).where(keyed.obj)


def compile_filter(entity: str, dialect: str, filter_obj: Any) -> filters.Pred:
    try:
        wire = filter_obj.toWire()
    except Exception:  # noqa: BLE001 - a filter object that cannot encode itself is not cached
        return filters.Compiler(view(entity), dialect).where(filter_obj)
    return _compiled(entity, dialect, _Keyed(wire, filter_obj))


class _Keyed:
    """A filter object hashed by its wire form, so the compile cache can key on it."""

    __slots__ = ("wire", "obj")

    def __init__(self, wire: bytes, obj: Any) -> None:
        self.wire, self.obj = wire, obj

    def __hash__(self) -> int:
        return hash(self.wire)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Keyed) and other.wire == self.wire


class _Converter:
    """Row -> (Entry, keyset cursor), run on the pool thread."""

    def __init__(self, view: EntityView, dn_tail: str, sel: Selection, types_only: bool, nkeys: int) -> None:
        self.view, self.dn_tail, self.sel, self.types_only = view, dn_tail, sel, types_only
        self.width = len(view.columns)
        self.nkeys = nkeys

    def __call__(self, row: Sequence[Any]) -> tuple[Entry, tuple]:
        dn = "uid=" + row[0] + self.dn_tail
        entry = self.view.make_entry(dn, row, self.sel, self.types_only)
        return entry, tuple(row[self.width:self.width + self.nkeys]) + (row[0],)


class _Search:
    def __init__(self, directory: StoreDirectory, spec: SearchSpec, send_entry: Callable[[Entry], None]) -> None:
        self.d = directory
        self.spec = spec
        self.send_entry = send_entry
        self.dialect = directory.store.dialect
        self.sel = selection(spec.attributes)
        self.interrupt = Interrupt()
        self.sent = 0
        self.sort_result: int | None = None
        self.paged = spec.page_size is not None
        self.cap, self.cap_reason = self._cap()
        self._plans: dict[str, Any] = {}
        self._outer: defer.Deferred | None = None

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> defer.Deferred:
        self._outer = defer.Deferred(self._cancel)
        d = defer.ensureDeferred(self._run())
        d.addCallbacks(self._finished, self._failed)
        return self._outer

    def _cancel(self, _d: defer.Deferred) -> None:
        self.interrupt.cancel()

    def _finished(self, done: SearchDone) -> None:
        if self._outer is not None and not self._outer.called:
            self._outer.callback(done)

    def _failed(self, failure: Any) -> None:
        if self._outer is not None and not self._outer.called:
            self._outer.errback(failure)

    # -- limits ---------------------------------------------------------------------------------------

    def _cap(self) -> tuple[int | None, str]:
        size, page = self.spec.size_limit or None, self.spec.page_size or None
        if page is not None and (size is None or page < size):
            return page, "page"
        return size, "size"

    def _room(self) -> int | None:
        return None if self.cap is None else max(self.cap - self.sent, 0)

    def _send(self, entry: Entry) -> None:
        self.sent += 1
        self.send_entry(entry)

    # -- the walk ---------------------------------------------------------------------------------------

    async def _run(self) -> SearchDone:
        segments = self._segments()
        loc = self._base
        if loc.kind == "entry" and not await self._exists(loc.book, loc.record_id):
            raise _no_such_object(self.spec.base, self.d.tree.book_dn(loc.book))
        start, after = self._resume(segments)
        self._check_sort(segments)
        for i in range(start, len(segments)):
            seg = segments[i]
            more = await (self._container(seg) if seg.kind != "records" else self._records(seg, after))
            if self.interrupt.cancelled:
                return SearchDone()
            if more is not False:
                return self._stopped(i, None if more is True else more)
            after = None
        return SearchDone(cookie=b"" if self.paged else None, sort_result=self.sort_result)

    def _stopped(self, segment: int, cursor: tuple | None) -> SearchDone:
        """The cap was reached and more entries exist from (segment, after cursor)."""
        if self.cap_reason == "page":
            return SearchDone(cookie=self._cookie(segment, cursor), sort_result=self.sort_result)
        return SearchDone(result_code=SIZE_LIMIT_EXCEEDED, message="size limit exceeded",
                          cookie=b"" if self.paged else None, sort_result=self.sort_result)

    def _segments(self) -> list[_Segment]:
        spec, tree = self.spec, self.d.tree
        try:
            loc = self._base = tree.locate(spec.base)
        except BadDN:
            raise ldaperrors.LDAPInvalidDNSyntax(str(spec.base)) from None
        if loc.kind == "outside":
            raise ldaperrors.LDAPNoSuchObject(str(spec.base))
        if loc.kind == "missing":
            matched = tree.book_dn(loc.book) if loc.book else tree.suffix
            raise _no_such_object(spec.base, matched)
        if loc.kind == "root":
            if spec.scope == BASE:
                return [_Segment("root")]
            if spec.scope == ONE_LEVEL:
                return [_Segment("ou", b) for b in BOOKS]
            return [_Segment("root")] + [s for b in BOOKS for s in (_Segment("ou", b), _Segment("records", b))]
        if loc.kind == "book":
            if spec.scope == BASE:
                return [_Segment("ou", loc.book)]
            if spec.scope == ONE_LEVEL:
                return [_Segment("records", loc.book)]
            return [_Segment("ou", loc.book), _Segment("records", loc.book)]
        if spec.scope == ONE_LEVEL:
            return []
        return [_Segment("records", loc.book, loc.record_id)]

    async def _exists(self, book: str, record_id: str) -> bool:
        """Whether the entry a base DN names exists for this user (invisible = absent)."""
        entity = BOOKS[book]
        visible = self._visibility(book, entity)
        if visible is None:
            return False
        v = view(entity)
        stmt = select(v.table.c.id).where(and_(visible, v.table.c.id == record_id)).limit(1)
        rows = await self.d.store.run(fetch_txn, stmt, tuple, self.interrupt)
        return bool(rows)

    async def _container(self, seg: _Segment) -> bool:
        if seg.kind == "root":
            dn, attrs = self.d.tree.suffix, self.d.root_attributes()
        else:
            dn, attrs = self.d.tree.book_dn(seg.book), _book_attributes(seg.book)  # type: ignore[arg-type]
        lowered = {k.lower(): v for k, v in attrs.items()}

        def lookup(attr: str) -> list[str] | None:
            name = canonical(attr)
            if name is None:
                return None
            return list(lowered.get(name.lower(), ()))

        if filters.evaluate(self.spec.filter, lookup) is not True:
            return False
        if self._room() == 0:
            return True
        self._send(container_entry(dn, attrs, self.sel, self.spec.types_only))
        return False

    # -- records ----------------------------------------------------------------------------------------

    def _plan(self, seg: _Segment) -> Any:
        key = (seg.book, seg.record_id)
        if key not in self._plans:
            self._plans[key] = self._make_plan(seg)
        return self._plans[key]

    def _make_plan(self, seg: _Segment) -> Any:
        entity = BOOKS[seg.book]  # type: ignore[index]
        v = view(entity)
        visible = self._visibility(seg.book, entity)  # type: ignore[arg-type]
        if visible is None:
            return None
        where = filters.conj([visible, compile_filter(entity, self.dialect, self.spec.filter)],
                             filters.Compiler(v, self.dialect))
        if where is filters.FALSE:
            return None
        compiler = filters.Compiler(v, self.dialect)
        where_sql = compiler.sql(where)
        if seg.record_id is not None:
            where_sql = and_(where_sql, v.table.c.id == seg.record_id)
        keys = self._sort_exprs(v) if self.sort_result == 0 else []
        dn_tail = "," + self.d.tree.book_dn(seg.book)  # type: ignore[arg-type]
        convert = _Converter(v, dn_tail, self.sel, self.spec.types_only, len(keys))
        return v, where_sql, keys, convert

    def _visibility(self, book: str, entity: str) -> Any:
        p = self.spec.principal
        v = view(entity)
        if p is None:
            if book.lower() not in {b.lower() for b in self.spec.anonymous_books}:
                return None
            primary = v.table.c[EMAIL_FIELDS[entity][0]]
            return and_(v.table.c.statecode == State.active, primary.is_not(None), primary != "")
        if p.depth(entity) == ReadDepth.none:
            return None
        visible = security.listed(p, entity)
        if entity == "contact" and p.address_book_matching == "synchronised":
            local: Any = filters.TRUE
            if p.local_filter_ldap:
                parsed = _parsed_local_filter(p.local_filter_ldap)
                local = filters.FALSE if parsed is None else compile_filter(entity, self.dialect, parsed)
            if local is filters.FALSE:
                return None
            parts = [visible, security.owner_scope(p, entity, p.local_filter_scope)]
            if local is not filters.TRUE:
                parts.append(filters.Compiler(v, self.dialect).sql(local))
            visible = and_(*parts)
        return visible

    async def _records(self, seg: _Segment, after: tuple | None) -> bool | tuple:
        plan = self._plan(seg)
        if plan is None:
            return False
        v, where_sql, keys, convert = plan
        ordered = self.paged or bool(keys) or self.cap is None or self.cap >= self.d.batch_size
        timeout_ms = int(self.spec.time_limit * 1000) if self.spec.time_limit else 0
        while True:
            room = self._room()
            n = self.d.batch_size if room is None else min(self.d.batch_size, room + 1)
            stmt = select(*v.columns, *(k for k, _ in keys)).select_from(v.from_clause).where(where_sql)
            if ordered:
                if after is not None:
                    stmt = stmt.where(_after(keys, v.table.c.id, after))
                stmt = stmt.order_by(*(k.desc() if rev else k for k, rev in keys), v.table.c.id)
            stmt = stmt.limit(n)
            rows = await self.d.store.run(fetch_txn, stmt, convert, self.interrupt, timeout_ms)
            if self.interrupt.cancelled:
                return False
            for entry, cursor in rows[: room if room is not None else len(rows)]:
                self._send(entry)
                after = cursor
            if room is not None and len(rows) > room:
                return after if after is not None else True
            if not ordered or len(rows) < n:
                return False

    # -- sorting ----------------------------------------------------------------------------------------

    def _check_sort(self, segments: list[_Segment]) -> None:
        if self.spec.sort is None:
            return
        for key in self.spec.sort:
            if canonical(key.attribute) is None:
                self.sort_result = NO_SUCH_ATTRIBUTE
                return
            if key.ordering_rule and key.ordering_rule.lower() not in _CASE_IGNORE_ORDERING:
                self.sort_result = UNWILLING_TO_PERFORM
                return
        books = {s.book for s in segments if s.kind == "records"}
        self.sort_result = 0 if len(books) <= 1 else UNWILLING_TO_PERFORM

    def _sort_exprs(self, v: EntityView) -> list[tuple[Any, bool]]:
        out = []
        fold = getattr(func, search_index.fold_sql(self.dialect))
        for key in self.spec.sort or ():
            name = canonical(key.attribute)
            field = v.by_attr.get(name.lower()) if name else None
            if field is None:
                continue  # every entry lacks it: no effect on the order
            expr = v.field_expr(field)
            if field in ("fullname", "name"):
                k = fold(expr)
            else:
                k = func.coalesce(fold(func.nullif(expr, "")), literal(_HIGH))
            if self.dialect != "sqlite":
                k = k.collate("C")
            out.append((k, key.reverse))
        return out

    # -- paging cookies ---------------------------------------------------------------------------------

    def _request_hash(self) -> bytes:
        s = self.spec
        try:
            wire = s.filter.toWire()
        except Exception:  # noqa: BLE001
            wire = repr(s.filter).encode()
        parts = [s.base if isinstance(s.base, str) else s.base.decode("utf-8", "replace"), str(s.scope),
                 wire.hex(), "|".join(a.lower() for a in s.attributes), str(s.types_only),
                 s.principal.user_id if s.principal else "", ",".join(sorted(s.anonymous_books)),
                 repr(s.sort)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16].encode()

    def _cookie(self, segment: int, cursor: tuple | None) -> bytes:
        body = json.dumps([segment, list(cursor) if cursor is not None else None], separators=(",", ":"))
        return _COOKIE_VERSION + self._request_hash() + body.encode()

    def _resume(self, segments: list[_Segment]) -> tuple[int, tuple | None]:
        cookie = self.spec.cookie
        if not self.paged or not cookie:
            return 0, None
        prefix = _COOKIE_VERSION + self._request_hash()
        if not cookie.startswith(prefix):
            raise ldaperrors.LDAPUnwillingToPerform("paged results cookie does not belong to this search")
        try:
            segment, cursor = json.loads(cookie[len(prefix):])
            segment = int(segment)
            if not 0 <= segment < len(segments):
                raise ValueError(segment)
        except (ValueError, TypeError) as e:
            raise ldaperrors.LDAPUnwillingToPerform("invalid paged results cookie") from e
        return segment, tuple(cursor) if cursor is not None else None


def _after(keys: list[tuple[Any, bool]], id_col: Any, cursor: tuple) -> Any:
    """Keyset condition: rows strictly after ``cursor`` in (sort keys..., id) order."""
    exprs = [k for k, _ in keys] + [id_col]
    reverse = [rev for _, rev in keys] + [False]
    ors = []
    for i, (expr, rev) in enumerate(zip(exprs, reverse)):
        eqs = [exprs[j] == cursor[j] for j in range(i)]
        ors.append(and_(*eqs, expr < cursor[i] if rev else expr > cursor[i]))
    return ors[0] if len(ors) == 1 else or_(*ors)


def _no_such_object(base: Any, matched: str) -> ldaperrors.LDAPNoSuchObject:
    err = ldaperrors.LDAPNoSuchObject(str(base))
    err.matchedDN = matched  # type: ignore[attr-defined]
    return err
