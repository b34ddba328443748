"""A small in-memory IDirectory: a real implementation of the interface over a list of entries.

It does what the store-backed directory does, in memory and without visibility rules beyond
"anonymous connections see only the books opened to them": base existence (noSuchObject), scopes,
filters (three-valued, case-insensitive), attribute selection, typesOnly, size limit (code 4 after the
entries), simple paging with an offset cookie, sorting, batches delivered on later reactor turns,
cancellation, and back-pressure (a Deferred returned by ``send_entry`` is waited on).
``hold()`` makes searches wait at their start until released, like a slow database.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from zope.interface import implementer

from abook.directory.api import BASE, ONE_LEVEL, Entry, IDirectory, SearchDone, SearchSpec
from abook.directory import matching


def _norm(dn: str) -> str:
    return ",".join(part.strip().lower() for part in dn.split(",")) if dn else ""


def _parent(dn: str) -> str:
    return dn.split(",", 1)[1] if "," in dn else ""


@implementer(IDirectory)
class MemoryDirectory:
    def __init__(self, entries: Iterable[Entry], clock: Any, suffix: str = "o=crm", batch: int = 50) -> None:
        self.entries = list(entries)
        self._clock = clock
        self._batch = batch
        self._suffix = _norm(suffix)
        self._gate: defer.Deferred | None = None
        self.searches: list[SearchSpec] = []
        self.cancelled = 0

    def hold(self) -> None:
        self._gate = defer.Deferred()

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.callback(None)

    def _known(self) -> set[str]:
        known = {self._suffix}
        for e in self.entries:
            dn = _norm(e.dn)
            while dn and dn != self._suffix:
                known.add(dn)
                dn = _parent(dn)
        return known

    def _visible(self, spec: SearchSpec, dn: str) -> bool:
        if spec.principal is not None:
            return True
        books = {("ou=" + b + "," + self._suffix).lower() for b in spec.anonymous_books}
        return any(dn.endswith("," + b) for b in books)

    def _select(self, spec: SearchSpec, entry: Entry) -> Entry:
        wanted = {a.lower() for a in spec.attributes}
        if wanted == {"1.1"}:
            attrs: list = []
        elif not wanted or "*" in wanted:
            attrs = list(entry.attributes)
        else:
            attrs = [(n, v) for n, v in entry.attributes if n.lower() in wanted]
        if spec.types_only:
            attrs = [(n, ()) for n, _ in attrs]
        return Entry(entry.dn, tuple(attrs))

    def _matches(self, spec: SearchSpec) -> list[Entry]:
        base = _norm(spec.base)
        if base not in self._known():
            raise ldaperrors.LDAPNoSuchObject(spec.base)
        out = []
        for e in self.entries:
            dn = _norm(e.dn)
            if spec.scope == BASE:
                in_scope = dn == base
            elif spec.scope == ONE_LEVEL:
                in_scope = _parent(dn) == base
            else:
                in_scope = dn == base or dn.endswith("," + base)
            if in_scope and self._visible(spec, dn) and matching.entry_matches(spec.filter, e.attributes):
                out.append(e)
        if spec.sort:
            key = spec.sort[0]

            def value(e: Entry) -> bytes:
                for n, v in e.attributes:
                    if n.lower() == key.attribute.lower() and v:
                        return min(v).lower()
                return b"\xff"

            out.sort(key=value, reverse=key.reverse)
        return out

    def search(self, spec: SearchSpec, send_entry: Callable[[Entry], Any]) -> defer.Deferred:
        self.searches.append(spec)
        state = {"cancelled": False, "call": None}

        def cancel(d: defer.Deferred) -> None:
            state["cancelled"] = True
            self.cancelled += 1
            if state["call"] is not None and state["call"].active():
                state["call"].cancel()

        result: defer.Deferred = defer.Deferred(cancel)

        def start(_: Any = None) -> None:
            if state["cancelled"]:
                return
            try:
                found = self._matches(spec)
            except ldaperrors.LDAPException as e:
                result.errback(e)
                return
            code, cookie = 0, None
            if spec.page_size is not None:
                offset = int(spec.cookie or b"0")
                page = found[offset: offset + spec.page_size] if spec.page_size else []
                cookie = str(offset + len(page)).encode() if offset + len(page) < len(found) else b""
                found = page
            elif spec.size_limit and len(found) > spec.size_limit:
                found, code = found[: spec.size_limit], ldaperrors.LDAPSizeLimitExceeded.resultCode
            done = SearchDone(result_code=code, cookie=cookie, sort_result=0 if spec.sort else None)
            deliver(found, 0, done)

        def deliver(found: list[Entry], pos: int, done: SearchDone) -> None:
            state["call"] = None
            if state["cancelled"]:
                return
            waits = []
            for e in found[pos: pos + self._batch]:
                w = send_entry(self._select(spec, e))
                if isinstance(w, defer.Deferred):
                    waits.append(w)
                if state["cancelled"]:
                    return
            pos += self._batch
            if pos >= len(found):
                result.callback(done)
                return
            if waits:
                defer.gatherResults(waits).addCallback(lambda _: deliver(found, pos, done))
            else:
                state["call"] = self._clock.callLater(0, deliver, found, pos, done)

        if self._gate is not None:
            self._gate.addCallback(start)
        else:
            state["call"] = self._clock.callLater(0, start)
        return result


def person(book: str, record_id: str, cn: str, mail: str, suffix: str = "o=crm", **more: str) -> Entry:
    """An entry as the directory serves one: inetOrgPerson + crmRecord, cn/sn/givenName/mail."""
    given, _, sn = cn.partition(" ")
    attrs: list[tuple[str, tuple[bytes, ...]]] = [
        ("objectClass", (b"top", b"person", b"organizationalPerson", b"inetOrgPerson", b"crmRecord")),
        ("uid", (record_id.encode(),)),
        ("cn", (cn.encode(),)),
        ("givenName", (given.encode(),)),
        ("sn", ((sn or given).encode(),)),
        ("mail", (mail.encode(),)),
    ]
    attrs += [(k, (v.encode(),)) for k, v in more.items()]
    return Entry(f"uid={record_id},ou={book},{suffix}", tuple(attrs))


def containers(suffix: str = "o=crm") -> list[Entry]:
    from abook.directory.tree import BOOKS

    out = [Entry(suffix, (("objectClass", (b"top", b"organization")), ("o", (suffix.split("=", 1)[1].encode(),))))]
    for book in BOOKS:
        out.append(Entry(f"ou={book},{suffix}", (("objectClass", (b"top", b"organizationalUnit")),
                                                 ("ou", (book.encode(),)))))
    return out
