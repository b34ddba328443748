"""Virtual List View windows in the database: count the list, find the target, fetch only the window.

A VLV list (draft-ietf-ldapext-ldapv3-vlv-09) is a search's sorted result: of the segments a search walks
(``store.directory.walk_txn``), the container entries first as the walk meets them, then the records in
(sort keys, id) order, several books' records merged. One pool call, one transaction, so the count, the target and the window agree:

* ``contentCount``: ``count(*)`` per record segment, with the same visibility and filter as the search;
* the target by offset: the draft's scaling of the client's offset to the server's count
  (``target_by_offset``, as OpenLDAP's sssvlv answers it); by ``greaterThanOrEqual``: ``count(*)`` of
  the records whose first sort key comes before the folded assertion value, plus one;
* the window: the ids of ``ORDER BY keys, id LIMIT n OFFSET k`` (several books: a UNION ALL of their
  keys and ids, merged), walked from the nearer end of the list (a window in the second half is read in
  reverse order and turned round, so at most half the list is skipped), then those rows by id.

The sort key expressions are the ones ``store.vlv_index`` indexes (with the visibility columns, so count
and skip read the index only). Nothing here holds more than the window's rows.
"""

from __future__ import annotations

import re
from typing import Any, Sequence

from sqlalchemy.orm import Session

from abook.store.directory import Interrupt, RecordQuery, armed_cursor

#: virtualListViewResult: the offset lies outside the list (the draft's offsetRangeError)
OFFSET_RANGE_ERROR = 61


def target_by_offset(offset: int, client_count: int, count: int) -> int | None:
    """The 1-based target position for a byOffset request; None: offsetRangeError.

    offset == contentCount names the last entry, offset 1 the first; a client's estimate that differs
    from ``count`` is scaled (Si = Sc * Ci / Cc); an offset past the end is out of range."""
    if offset == client_count:
        return count
    if offset == 1:
        return 1
    if client_count and client_count != count:
        if offset > client_count:
            return None
        target = count * offset // client_count
    else:
        if offset > count:
            return None
        target = offset
    return max(target, 1) if count else target


def window(target: int, before: int, after: int, count: int, cap: int) -> tuple[int, int]:
    """Positions [first, last] (1-based, inclusive; empty when last < first) of the entries to send,
    at most ``cap`` of them."""
    first = max(1, target - before)
    last = min(count, target + after)
    if last - first + 1 > cap:
        last = first + cap - 1
    return first, last


_JOIN = re.compile(r"\s+LEFT OUTER JOIN\s+\S+\s+AS\s+(\w+)\s+ON\s+.*?(?=\s+LEFT OUTER JOIN\s+|$)")


def _from_where(q: RecordQuery) -> str:
    """``FROM ... WHERE ...`` of a record query, without the joins its WHERE clause does not read.

    An entity's joins (``entries.EntityView``) are LEFT OUTER JOINs to a parent row by its primary key:
    they never change which rows or how many, so counting and skipping need only the ones the filter
    reads, and then the database walks the sort key index alone, not the table row by row."""
    from_ = re.split(r"\s+FROM\s+", q.select, maxsplit=1)[1]
    from_ = _JOIN.sub(lambda m: m.group(0) if f"{m.group(1)}." in q.where else "", from_)
    return f"FROM {from_} WHERE ({q.where})"


def count_sql(q: RecordQuery) -> tuple[str, tuple]:
    return f"SELECT count(*) {_from_where(q)}", q.params


def before_value_sql(q: RecordQuery, value: str) -> tuple[str, tuple]:
    """The records whose first sort key comes before ``value`` in the list's order."""
    op = ">" if q.reverse[0] else "<"
    return f"SELECT count(*) {_from_where(q)} AND {q.keys[0]} {op} {q.placeholder}", q.params + (value,)


def union_sql(queries: Sequence[RecordQuery], skip: int, n: int, backwards: bool = False) -> tuple[str, tuple]:
    """(segment, id) of ``n`` records after skipping ``skip`` of the books' lists merged in sort order
    (one book: its list). The queries' keys line up (``QueryPlanner.align``): the same number and
    directions."""
    def direction(rev: bool) -> str:
        return " DESC" if rev != backwards else ""

    if len(queries) == 1:  # ordered by the index's own expressions: SQLite reads the ids from the index
        q = queries[0]
        order = [k + direction(rev) for k, rev in zip(q.keys, q.reverse)] + [q.id_column + direction(False)]
        return (f"SELECT 0, {q.id_column} {_from_where(q)} ORDER BY {', '.join(order)} "
                f"LIMIT {int(n)} OFFSET {int(skip)}", q.params)
    arms, params = [], ()
    for i, q in enumerate(queries):
        keys = "".join(f", {k} AS k{j}" for j, k in enumerate(q.keys))
        arms.append(f"SELECT {i} AS seg, {q.id_column} AS id{keys} {_from_where(q)}")
        params += q.params
    # ids are unique across books (random UUIDs), so (keys, id) orders the merged list completely
    order = [f"{j + 3}{direction(rev)}" for j, rev in enumerate(queries[0].reverse)] + [f"2{direction(False)}"]
    return f"{' UNION ALL '.join(arms)} ORDER BY {', '.join(order)} LIMIT {int(n)} OFFSET {int(skip)}", params


def _merged(cur: Any, queries: list[RecordQuery], skip: int, n: int, backwards: bool) -> list[tuple[RecordQuery, Any]]:
    """The rows of a window, in the list's order: which ones from the sort keys and ids (the index alone),
    then each book's rows by id (only the window's rows are read from the tables)."""
    cur.execute(*union_sql(queries, skip, n, backwards))
    picked = [(int(seg), ident) for seg, ident, *_ in cur.fetchall()]
    rows: dict[tuple[int, Any], Any] = {}
    for i, q in enumerate(queries):
        ids = [ident for seg, ident in picked if seg == i]
        if ids:
            marks = ", ".join([q.placeholder] * len(ids))
            cur.execute(f"{q.select} WHERE ({q.where}) AND {q.id_column} IN ({marks})", q.params + tuple(ids))
            for row in cur.fetchall():
                rows[(i, row[0])] = row
    return [(queries[seg], rows[(seg, ident)]) for seg, ident in picked if (seg, ident) in rows]


def window_txn(
    session: Session,
    segments: Sequence[Any],
    before: int,
    after: int,
    offset: int,
    client_count: int,
    assertion: str | None,
    cap: int,
    interrupt: Interrupt,
    timeout_ms: int = 0,
) -> tuple[list[Any], int, int, int]:
    """(entries of the window, target position, content count, virtualListViewResult).

    ``segments`` as ``walk_txn`` takes them: container entries, None, RecordQuery values or callables
    returning one. ``assertion`` (already folded) selects the greaterThanOrEqual form, else ``offset``
    and ``client_count`` the byOffset form. A record segment's query must be ordered by its sort keys."""
    if interrupt.cancelled:
        return [], 0, 0, 0
    with armed_cursor(session, interrupt, timeout_ms) as cur:

        def scalar(sql: tuple[str, tuple]) -> int:
            cur.execute(*sql)
            return int(cur.fetchone()[0])

        containers: list[Any] = []
        queries: list[tuple[RecordQuery, int]] = []  # each record segment with how many entries it holds
        for seg in segments:
            if callable(seg):
                seg = seg()
            if isinstance(seg, RecordQuery):
                n = scalar(count_sql(seg))
                if n:
                    queries.append((seg, n))
            elif seg is not None:
                containers.append(seg)
        nc, nr = len(containers), sum(n for _, n in queries)
        count = nc + nr
        if assertion is not None:  # containers come first; then the first record at or after the value
            ahead = sum(scalar(before_value_sql(q, assertion)) for q, _ in queries)
            target = nc + ahead + 1 if ahead < nr else count + 1
        else:
            found = target_by_offset(offset, client_count, count)
            if found is None:
                return [], 0, count, OFFSET_RANGE_ERROR
            target = found
        first, last = window(target, before, after, count, cap)
        out: list[Any] = containers[first - 1:min(last, nc)]
        lo, hi = max(first - nc, 1), last - nc  # the records' part of the window, 1-based
        if hi >= lo:
            backwards = lo - 1 > nr - hi  # nearer the end: skip from there
            skip, n = (nr - hi if backwards else lo - 1), hi - lo + 1
            rows = _merged(cur, [q for q, _ in queries], skip, n, backwards)
            if backwards:
                rows.reverse()
            out.extend(q.convert(row)[0] for q, row in rows)
        return out, target, count, 0
