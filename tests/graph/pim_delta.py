"""Delta rounds for the responder's calendarView and To Do collections ("Use delta query to track changes in
Microsoft Graph data", "event: delta", "todoTask: delta" on learn.microsoft.com).

A delta token remembers the collection, the change counter and which ids were in it when the round began.
The next round lists, in full, every item now in the collection that changed since (``seq`` beyond the
token's), and ``{"id", "@removed": {"reason": "deleted"}}`` for each id that was in the collection and is
not any more (deleted, or - for a calendarView - moved out of its window). Pages hold at most
``Prefer: odata.maxpagesize`` entries (default 10) and link on with ``$skiptoken``; the last page carries
the ``@odata.deltaLink``. The window of a calendarView is encoded in its tokens, so a ``$skiptoken`` or
``$deltatoken`` URL carries no ``startDateTime``/``endDateTime``. Tokens the test expired answer 410.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from tests.graph.responder import GraphResponder, Reply

#: the current members of a collection: (id, seq, resource)
Members = Callable[[], list[tuple[str, int, dict[str, Any]]]]


@dataclass
class Scope:
    mailbox: str
    #: ("calendarView", start, end) or ("todo", list id)
    key: tuple[str, ...]
    members: Members
    path: str
    kind: str


@dataclass
class DeltaState:
    rounds: dict[str, tuple[Scope, list[dict[str, Any]], int, frozenset[str]]] = field(default_factory=dict)
    tokens: dict[str, tuple[Scope, int, frozenset[str]]] = field(default_factory=dict)


def state(g: "GraphResponder") -> DeltaState:
    return g.store.__dict__.setdefault("pim_delta", DeltaState())  # type: ignore[no-any-return]


def expire(g: "GraphResponder", mailbox: str) -> None:
    s = state(g)
    g.store.expired.update(t for t, r in s.rounds.items() if r[0].mailbox == mailbox)
    g.store.expired.update(t for t, r in s.tokens.items() if r[0].mailbox == mailbox)


def quirks(store: Any, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A page as Graph may hand it out when the test asks: its first entry twice, or foreign entries first."""
    if store.repeat_next and entries:
        entries = [entries[0]] + entries
        store.repeat_next = False
    if store.inject_next:  # entries out of order
        entries = store.inject_next + entries
        store.inject_next = []
    return entries


def reply(g: "GraphResponder", scope: Scope, q: dict[str, str], headers: dict[str, str]) -> "Reply":
    from tests.graph.responder import _error, _json

    store, s = g.store, state(g)
    gone = _error(410, "SyncStateNotFound", "The sync state generation is not found. The delta token is expired "
                                            "and data must be synchronized again.")
    size = re.search(r"odata\.maxpagesize=(\d+)", headers.get("Prefer", ""))
    page_size = max(1, int(size.group(1))) if size else 10
    if "$skiptoken" in q:
        token, _, offset_text = q["$skiptoken"].partition(".")
        if token in store.expired or token not in s.rounds:
            return gone
        scope, entries, end_seq, ids = s.rounds[token]
        offset = int(offset_text or 0)
    else:
        now = scope.members()
        if "$deltatoken" in q:
            if q["$deltatoken"] in store.expired or q["$deltatoken"] not in s.tokens:
                return gone
            scope, since, before = s.tokens[q["$deltatoken"]]
            now = scope.members()
            present = {i for i, _, _ in now}
            entries = [r for _, seq, r in sorted(now, key=lambda m: m[1]) if seq > since]
            entries += [{"@odata.type": f"#microsoft.graph.{scope.kind}", "id": i, "@removed": {"reason": "deleted"}}
                        for i in sorted(before - present)]
        else:
            entries = [r for _, _, r in sorted(now, key=lambda m: m[1])]
        token, offset, end_seq, ids = uuid.uuid4().hex, 0, store.seq, frozenset(i for i, _, _ in now)
        s.rounds[token] = (scope, entries, end_seq, ids)
    page_entries = quirks(store, entries[offset:offset + page_size])
    page: dict[str, Any] = {"@odata.context": f"{g.graph_url}/$metadata#Collection({scope.kind})", "value": page_entries}
    if offset + page_size < len(entries):
        page["@odata.nextLink"] = g.link(scope.path, **{"$skiptoken": f"{token}.{offset + page_size}"})
    else:
        delta = uuid.uuid4().hex
        s.tokens[delta] = (scope, end_seq, ids)
        page["@odata.deltaLink"] = g.link(scope.path, **{"$deltatoken": delta})
    return _json(200, page, {"Preference-Applied": f"odata.maxpagesize={page_size}"} if size else None)
