"""``StoreDirectory``: the ``IDirectory`` the LDAP server searches, over the SQL store.

A search walks the *segments* its base and scope select, in tree order: the suffix entry, then per
address book its ``ou`` entry and its records. Container entries are matched in memory on the reactor
thread (``matching``); records come from one SQL query per segment and batch (``query.QueryPlanner``:
filter + visibility in the WHERE clause, LIMIT in the database). One pool call (``store.directory.walk_txn``)
walks as many segments as a batch needs; rows become frozen ``Entry`` values in the worker and
``send_entry`` runs on the reactor thread. Anonymous connections see nothing under the suffix unless
``spec.anonymous_books`` opens books to them; a book a user may not read shows as empty.

Limits: the size limit stops the query in the database (LIMIT n+1 tells whether more exist) and ends
with sizeLimitExceeded (4). Simple paged results use keyset pagination on (sort keys, id): the cookie
names the segment, the last entry's keys and a hash of the request (a cookie from another search is
refused with unwillingToPerform). Unpaged searches stream in keyset batches of ``batch_size``; when
``send_entry`` returns a Deferred (a slow reader's buffer is full) the walk waits for it, so a whole-book
download costs about one batch of memory. Server-side sort works on any served attribute within one
book; across books it answers sortResult unwillingToPerform (53), noSuchAttribute (16) for an unknown
attribute; a Virtual List View window (``directory/vlv.py``) merges several books. Cancelling the
Deferred (abandon, time limit, lost connection) interrupts the running statement. Base ``""`` with scope one-level finds the suffix entry, subtree the whole tree (Apple).
``spec.time_limit`` stops a running statement (timeLimitExceeded, 3), ``cost_limit`` bounds each batch's
CPU (adminLimitExceeded, 11), and a ``scheduler`` (``abook/scheduling.py``) shares the ``db`` pool fairly
between ``spec.requester`` values. A base DN naming no visible entry fails with noSuchObject (32), its
``matchedDN`` set to the deepest existing ancestor.
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any, Callable, NamedTuple

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from abook.directory import matching, vlv
from abook.directory.api import BASE, ONE_LEVEL, Entry, IDirectory, SearchDone, SearchSpec
from abook.directory.entries import canonical, container_entry, selection, view
from abook.directory.query import Lazy, QueryPlanner, filter_wire
from abook.directory.tree import BOOKS, BadDN, Tree, book_attributes
from abook.scheduling import FairQueue
from abook.store import Store
from abook.store.directory import Interrupt, Position, RecordQuery, walk_txn

SIZE_LIMIT_EXCEEDED = 4
NO_SUCH_ATTRIBUTE = 16
UNWILLING_TO_PERFORM = 53
_CASE_IGNORE_ORDERING = {"caseignoreorderingmatch", "2.5.13.3"}
_COOKIE_VERSION = b"1"
_PREPARED_REQUESTS = 2048  # about 7 kB each (six RecordQuery values, seven containers)
_OVER_BUDGET = "the search examined too much; narrow the filter or the base"


_UNSET: Any = object()


class _Segment(NamedTuple):
    """A part of the tree a search walks (a tuple: it is a cache key, hashed on every search)."""

    kind: str  # "root", "ou" or "records"
    book: str | None = None
    record_id: str | None = None  # records: only this record (a base DN naming an entry)


@implementer(IDirectory)
class StoreDirectory:
    """Searches the store as one LDAP tree (``tree``), at most ``batch_size`` rows per database call."""

    log = Logger()

    def __init__(self, store: Store, tree: Tree | None = None, batch_size: int = 500, encode: bool = False,
                 scheduler: FairQueue | None = None, cost_limit: float = 0.0) -> None:
        self.store = store
        self.tree = tree or Tree()
        self.batch_size = batch_size
        #: shares the ``db`` pool fairly between users and connections (``SearchSpec.requester``); None:
        #: every batch goes straight to the store's pool
        self.scheduler = scheduler
        #: CPU seconds one batch may use before the search ends with adminLimitExceeded (0: no limit)
        self.cost_limit = cost_limit
        #: records come as ``Entry.ber``, encoded on the pool thread (the daemon's setting: the reactor
        #: thread then only frames and writes them); False: as attribute values (tests, tools)
        self.encode = encode
        self._root_attrs = self.tree.root_attributes()
        #: prepared segments (container entries, RecordQuery values) of recent requests, by request (the
        #: filter's wire form, who asks, which attributes) and then by segment: a repeated request (the
        #: same mail lookup, the same type-ahead prefix) skips evaluating and compiling its filter
        self._prepared: dict[tuple, dict[tuple, Any]] = {}

    def per_request(self, request: tuple | None) -> dict[tuple, Any] | None:
        """The prepared segments of one request, by segment key (None: the request is not cacheable).
        Values are immutable; ``_Search._prepared`` fills it."""
        if request is None:
            return None
        per = self._prepared.get(request)
        if per is None:
            if len(self._prepared) >= _PREPARED_REQUESTS:
                self._prepared.clear()
            per = self._prepared[request] = {}
        return per

    def search(self, spec: SearchSpec, send_entry: Callable[[Entry], Any]) -> defer.Deferred:
        return _Search(self, spec, send_entry).start()

    def statement(self, spec: SearchSpec, book: str, n: int = 100, ordered: bool = False) -> tuple[str, tuple]:
        """The SQL and parameters a search runs for one book's records (EXPLAIN in tests, benchmarks)."""
        search = _Search(self, spec, lambda _e: None)
        search._segments()
        search._check_sort([_Segment("records", book)])
        query = search._query(_Segment("records", book), ordered)
        if query is None:
            return "", ()
        return query.sql(None, n)

    def root_attributes(self) -> dict[str, tuple[str, ...]]:
        return self._root_attrs


class _Search:
    def __init__(self, directory: StoreDirectory, spec: SearchSpec, send_entry: Callable[[Entry], Any]) -> None:
        self.d = directory
        self.spec = spec
        self.send_entry = send_entry
        self.sel = selection(spec.attributes)
        scheduler = directory.scheduler if spec.requester is not None else None
        self.interrupt = Interrupt(time.monotonic() + spec.time_limit if spec.time_limit else None,
                                   directory.cost_limit, scheduler.contention() if scheduler is not None else None)
        self.sent = 0
        self.sort_result: int | None = None
        self.paged = spec.page_size is not None
        self.cap, self.cap_reason = self._cap()
        self._wire = spec.filter_wire if spec.filter_wire is not None else filter_wire(spec.filter)
        self.planner = QueryPlanner(spec, directory.store.dialect, directory.tree, self.sel, self._wire,
                                    directory.encode)
        self._per: Any = _UNSET  # this request's prepared segments (StoreDirectory.per_request)
        self._outer: defer.Deferred | None = None
        #: the batch waiting for or running on the pool
        self._batch: defer.Deferred | None = None

    # -- life cycle -----------------------------------------------------------------------------------

    def start(self) -> defer.Deferred:
        self._outer = defer.Deferred(self._cancel)
        d = defer.ensureDeferred(self._run())
        d.addCallbacks(self._finished, self._failed)
        return self._outer

    def _cancel(self, _d: defer.Deferred) -> None:
        self.interrupt.cancel()
        if self._batch is not None:  # a batch still waiting in the fair queue never starts
            self._batch.cancel()

    def _db(self, f: Callable[..., Any], *args: Any) -> defer.Deferred:
        """Run a batch on the ``db`` pool: through the fair queue on behalf of the requester, if any."""
        scheduler, requester = self.d.scheduler, self.spec.requester
        if scheduler is None or requester is None:
            d = self.d.store.read(f, *args)
        else:
            d = scheduler.run(requester, f, *args)  # the scheduler runs it as a read of the store
        self._batch = d
        return d

    def _finished(self, done: SearchDone) -> None:
        if self._outer is not None and not self._outer.called:
            self._outer.callback(done)

    def _failed(self, failure: Any) -> None:
        if self._outer is not None and not self._outer.called:
            self._outer.errback(failure)

    def _cap(self) -> tuple[int | None, str]:
        size, page = self.spec.size_limit or None, self.spec.page_size or None
        if page is not None and (size is None or page < size):
            return page, "page"
        return size, "size"

    # -- the walk ---------------------------------------------------------------------------------------

    async def _run(self) -> SearchDone:
        kinds = self._segments()
        loc = self._base
        if loc.kind == "entry" and not await self._exists(loc.book, loc.record_id):  # type: ignore[arg-type]
            raise _no_such_object(self.spec.base, self.d.tree.book_dn(loc.book))  # type: ignore[arg-type]
        self._check_sort(kinds)
        if self.spec.sort_critical and self.sort_result not in (None, 0):
            # RFC 2891 1.2: unsortable and critical -> no entries; the server answers 12 with sortResult
            return SearchDone(cookie=b"" if self.paged else None, sort_result=self.sort_result)
        if self.spec.vlv is not None:
            return await vlv.browse(self, kinds)
        pos: Position = self._resume(kinds)
        ordered = self.paged or self.sort_result == 0 or self.cap is None or self.cap >= self.d.batch_size
        segments = [self._prepare(k, ordered) for k in kinds]
        timeout_ms = int(self.spec.time_limit * 1000) if self.spec.time_limit else 0
        batch = self.d.batch_size
        while True:
            room = None if self.cap is None else self.cap - self.sent
            want = batch if room is None else min(batch, room + 1)
            try:
                items, exhausted = await self._db(walk_txn, segments, pos, want, self.interrupt, timeout_ms)
            except Exception:
                if self.interrupt.expired():  # SQLite's progress handler or PostgreSQL's statement_timeout
                    raise ldaperrors.LDAPTimeLimitExceeded("time limit exceeded") from None
                if self.interrupt.over_budget:
                    raise ldaperrors.LDAPAdminLimitExceeded(_OVER_BUDGET) from None
                raise
            if self.interrupt.expired():
                raise ldaperrors.LDAPTimeLimitExceeded("time limit exceeded")
            if self.interrupt.cancelled:
                return SearchDone()
            for entry, after in items[:room]:
                self.sent += 1
                drained = self.send_entry(entry)
                pos = after
                if drained is not None:  # the client reads slowly: wait until its buffer drains
                    await drained
                    if self.interrupt.cancelled:
                        return SearchDone()
            if room is not None and len(items) > room:
                return self._stopped(pos)
            if exhausted or not items:
                return SearchDone(cookie=b"" if self.paged else None, sort_result=self.sort_result)
            pos = items[-1][1]

    def _stopped(self, pos: Position) -> SearchDone:
        """The cap was reached and more entries exist after ``pos``."""
        if self.cap_reason == "page":
            return SearchDone(cookie=self._cookie(pos), sort_result=self.sort_result)
        return SearchDone(result_code=SIZE_LIMIT_EXCEEDED, message="size limit exceeded",
                          cookie=b"" if self.paged else None, sort_result=self.sort_result)

    def _segments(self) -> list[_Segment]:
        spec, tree = self.spec, self.d.tree
        try:
            loc = self._base = tree.locate(spec.base)
        except BadDN:
            raise ldaperrors.LDAPInvalidDNSyntax(str(spec.base)) from None
        if loc.kind == "outside" and not spec.base and spec.scope != BASE:
            # base "" (Apple clients): one level below the root DSE is the suffix, the subtree is everything
            return [_Segment("root")] if spec.scope == ONE_LEVEL else self._whole_tree()
        if loc.kind == "outside":
            raise _no_such_object(spec.base, "")
        if loc.kind == "missing":
            raise _no_such_object(spec.base, tree.book_dn(loc.book) if loc.book else tree.suffix)
        if loc.kind == "root":
            if spec.scope == BASE:
                return [_Segment("root")]
            if spec.scope == ONE_LEVEL:
                return [_Segment("ou", b) for b in BOOKS]
            return self._whole_tree()
        if loc.kind == "book":
            if spec.scope == BASE:
                return [_Segment("ou", loc.book)]
            if spec.scope == ONE_LEVEL:
                return [_Segment("records", loc.book)]
            return [_Segment("ou", loc.book), _Segment("records", loc.book)]
        if spec.scope == ONE_LEVEL:
            return []
        return [_Segment("records", loc.book, loc.record_id)]

    def _whole_tree(self) -> list[_Segment]:
        return [_Segment("root")] + [s for b in BOOKS for s in (_Segment("ou", b), _Segment("records", b))]

    async def _exists(self, book: str, record_id: str) -> bool:
        """Whether the entry a base DN names exists for this user (invisible = absent)."""
        query = self._query(_Segment("records", book, record_id), ordered=False, with_filter=False)
        if query is None:
            return False
        items, _ = await self._db(walk_txn, [query], (0, None), 1, self.interrupt)
        return bool(items)

    def _prepare(self, seg: _Segment, ordered: bool) -> Any:
        """A segment as the worker walks it: a container Entry, None, or a RecordQuery."""
        if seg.kind == "records":
            return Lazy(self._query, seg, ordered)
        if self.spec.principal is None and not self._open_to_anonymous(seg):
            return None
        return self._prepared((seg,), lambda: self._container(seg))

    def _container(self, seg: _Segment) -> Entry | None:
        if seg.kind == "root":
            dn, attrs = self.d.tree.suffix, self.d.root_attributes()
        else:
            dn, attrs = self.d.tree.book_dn(seg.book), book_attributes(seg.book)  # type: ignore[arg-type]
        lowered = {k.lower(): v for k, v in attrs.items()}

        def lookup(attr: str) -> list[str] | None:
            name = canonical(attr)
            return None if name is None else list(lowered.get(name.lower(), ()))

        if matching.evaluate(self.spec.filter, lookup) is not True:
            return None
        return container_entry(dn, attrs, self.sel, self.spec.types_only)

    def _open_to_anonymous(self, seg: _Segment) -> bool:
        """SPEC 2: anonymous connections read the root DSE only, unless the config opens books to them;
        then they see those books' ``ou`` entries and the suffix above them, never the other books."""
        opened = {b.lower() for b in self.spec.anonymous_books}
        return bool(opened) if seg.kind == "root" else (seg.book or "").lower() in opened

    # -- records ----------------------------------------------------------------------------------------

    def _query(self, seg: _Segment, ordered: bool, with_filter: bool = True) -> RecordQuery | None:
        return self._prepared((seg, ordered, with_filter),
                               lambda: self.planner.build(seg.book, seg.record_id, ordered, with_filter,  # type: ignore[arg-type]
                                                          self.sort_result))

    def _prepared(self, key: tuple, build: Callable[[], Any]) -> Any:
        """``build()`` cached for this request: the request's cache is looked up once per search (its key
        hashes the principal's whole read scope), then each segment by its own small key."""
        if self._per is _UNSET:
            self._per = self.d.per_request(self._request_key())
        per = self._per
        if per is None:
            return build()
        try:
            return per[key]
        except KeyError:
            value = per[key] = build()
            return value

    def _request_key(self) -> tuple | None:
        """What a prepared segment depends on besides the segment (None: the filter has no wire form)."""
        if self._wire is None:
            return None
        p = self.spec.principal
        who = self.planner.principal_key() if p is not None else ("anonymous", self.spec.anonymous_books)
        return (self._wire, who, self.sel, self.spec.types_only, self.spec.sort, self.sort_result, self.planner.align)

    # -- sorting ----------------------------------------------------------------------------------------

    def _check_sort(self, segments: list[_Segment]) -> None:
        if self.spec.sort is None:
            return
        self._per = _UNSET  # the request key includes sort_result, which this decides
        for key in self.spec.sort:
            if canonical(key.attribute) is None:
                self.sort_result = NO_SUCH_ATTRIBUTE
                return
            if key.ordering_rule and key.ordering_rule.lower() not in _CASE_IGNORE_ORDERING:
                self.sort_result = UNWILLING_TO_PERFORM
                return
        books = {s.book for s in segments if s.kind == "records"}
        # one book sorts in its query; several only in a VLV window (store.vlv merges their orders)
        self.planner.align = len(books) > 1 and self.spec.vlv is not None
        self.sort_result = 0 if len(books) <= 1 or self.planner.align else UNWILLING_TO_PERFORM

    # -- paging cookies ---------------------------------------------------------------------------------

    def _request_hash(self) -> bytes:
        s = self.spec
        wire = self._wire if self._wire is not None else repr(s.filter).encode()
        parts = [s.base if isinstance(s.base, str) else s.base.decode("utf-8", "replace"), str(s.scope),
                 wire.hex(), "|".join(a.lower() for a in s.attributes), str(s.types_only),
                 s.principal.user_id if s.principal else "", ",".join(sorted(s.anonymous_books)),
                 repr(s.sort)]
        return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16].encode()

    def _cookie(self, pos: Position) -> bytes:
        segment, cursor = pos
        body = json.dumps([segment, list(cursor) if cursor is not None else None], separators=(",", ":"))
        return _COOKIE_VERSION + self._request_hash() + body.encode()

    def _resume(self, segments: list[_Segment]) -> Position:
        cookie = self.spec.cookie
        if not self.paged or not cookie:
            return 0, None
        prefix = _COOKIE_VERSION + self._request_hash()
        if not cookie.startswith(prefix):
            raise ldaperrors.LDAPUnwillingToPerform("paged results cookie does not belong to this search")
        # The hash ties a cookie to its user and request but is no secret: a client can forge the rest, so
        # everything is checked (a number too large for a float, JSON nested too deep, a cursor of the
        # wrong length or with values that are not text) and every bad cookie answers 53.
        try:
            segment, cursor = json.loads(cookie[len(prefix):])
            if type(segment) is not int or not 0 <= segment <= len(segments):
                raise ValueError(segment)
            if cursor is not None and not self._valid_cursor(segments, segment, cursor):
                raise ValueError(cursor)
        except (ValueError, TypeError, OverflowError, RecursionError) as e:
            raise ldaperrors.LDAPUnwillingToPerform("invalid paged results cookie") from e
        return segment, tuple(cursor) if cursor is not None else None

    def _valid_cursor(self, segments: list[_Segment], segment: int, cursor: Any) -> bool:
        """A cursor as ``_cookie`` writes it: within a records segment, its sort key values and id, as text
        a store can hold (PostgreSQL text holds no NUL)."""
        if segment == len(segments) or segments[segment].kind != "records" or not isinstance(cursor, list):
            return False
        book = segments[segment].book
        keys = len(self.planner.sort_keys(view(BOOKS[book]))) if self.sort_result == 0 else 0  # type: ignore[index]
        return len(cursor) == keys + 1 and all(type(v) is str and "\x00" not in v for v in cursor)


def _no_such_object(base: Any, matched: str) -> ldaperrors.LDAPNoSuchObject:
    err = ldaperrors.LDAPNoSuchObject(str(base))
    err.matchedDN = matched  # type: ignore[attr-defined]
    return err
