"""Tracking a batch: ``track_many_txn(session, requests, config)`` gives each message the outcome and rows
``track_txn`` (``tracking/engine.py``) would give it one after the other, for less: one query each for the
batch's duplicates, addresses, In-Reply-To/References and tokens, and the tracked messages' rows written
with one INSERT per table in one SAVEPOINT (a message depending on the batch's own rows is tracked on its
own after them, its addresses still taken from the batch's one resolution), then one query linking the
replies that were waiting for them (``store/replies.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from abook.config.model import TrackingConfig
from abook.store import DuplicateKey, ensure_transaction, replies, savepoint
from abook.store import tracking as store
from abook.tracking import engine
from abook.tracking.api import TrackRequest, TrackResult
from abook.tracking.engine import _REFUSED, _attachment, _log_tracked, _Plan, _Reads, _Reject, _Resolved, _rows
from abook.tracking.parse import ParsedMessage, parse_message
from abook.tracking.parties import lookup_keys
from abook.tracking.tokens import find_tokens

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


#: a message larger than this is tracked on its own (its attachments decoded one at a time), never pending
BATCH_MESSAGE_BYTES = 1 << 20
#: a batch writes its pending rows once they hold this much mail
BATCH_PENDING_BYTES = 16 << 20


@dataclass
class _Pending:
    index: int
    request: TrackRequest
    parsed: ParsedMessage
    plan: _Plan
    rows: store.NewEmail


class _Batch(_Reads):
    """The reads of a whole batch done at once, and the rows of its tracked messages written at once.

    A message whose outcome depends on the batch's own writes (a copy of, or a reply to, a message tracked
    earlier in the batch) is tracked on its own after the pending rows are written, so every message gets
    the outcome and rows ``track_txn`` would give it, one after the other."""

    def __init__(self, session: Session, config: TrackingConfig, parsed: list[tuple[TrackRequest, ParsedMessage]]):
        self.session = session
        self.config = config
        self.pending: list[_Pending] = []
        self.pending_bytes = 0
        self.results: list[TrackResult] = []
        #: message keys and Message-IDs tracked in this batch: the prefetched reads do not know them
        self.keys: set[str] = set()
        self.message_ids: set[str] = set()
        self.index = 0
        self._request: TrackRequest | None = None
        self._parsed: ParsedMessage | None = None
        keys, lookups, ids, tokens = [], [], [], []
        for request, p in parsed:
            keys.append(p.message_key)
            lookups.extend(lookup_keys(p.addresses, request.direction == "out"))
            ids.extend(p.in_reply_to + p.references)
            tokens.extend(find_tokens(config, p.subject))
        self.existing = store.emails_by_keys_txn(session, keys)
        self.found = store.resolve_addresses_txn(session, lookups)
        self.by_ids = store.emails_by_message_ids_txn(session, ids)
        self.by_token_rows = store.emails_by_tokens_txn(session, tokens)
        #: for a message tracked on its own after the pending rows: its addresses are resolved already
        self.resolved = _Resolved(self.found)

    def depends_on_batch(self, parsed: ParsedMessage) -> bool:
        return parsed.message_key in self.keys or any(
            m in self.message_ids for m in parsed.in_reply_to + parsed.references)

    # the prefetched reads (_Reads)
    def email_by_key(self, session: Session, message_key: str) -> str | None:
        return self.existing.get(message_key)

    def resolve(self, session: Session, keys: list[str]) -> dict[str, list[tuple[str, str]]]:
        return self.found

    def by_message_ids(self, session: Session, ids: list[str]) -> list[store.Correlated]:
        wanted = set(ids)
        return [row for row in self.by_ids if row.message_id in wanted]

    def by_tokens(self, session: Session, tokens: list[str]) -> list[store.Correlated]:
        wanted = set(tokens)
        return [row for row in self.by_token_rows if row.tracking_token in wanted]

    def tracked(self, parsed: ParsedMessage) -> None:
        self.keys.add(parsed.message_key)
        if parsed.message_id is not None:
            self.message_ids.add(parsed.message_id)

    def add(self, request: TrackRequest, parsed: ParsedMessage, plan: _Plan, activity_id: str) -> None:
        try:
            activity, email = _rows(request, parsed, plan, activity_id)
            rows = store.NewEmail(activity, email, plan.parties, [_attachment(part) for part in parsed.attachments],
                                  {"mailbox": request.mailbox, "external_id": request.external_id,
                                   "arrival": request.arrival}, engine.awaits(parsed, plan, activity_id))
        except _REFUSED as e:
            raise _Reject("parse_error", f"the store refused the message: {type(e).__name__}") from None
        self.pending.append(_Pending(self.index, request, parsed, plan, rows))
        self.pending_bytes += len(request.raw)
        self.tracked(parsed)

    def flush(self) -> None:
        """Write the pending rows in one savepoint; when the store refuses any of them (or another daemon
        tracked one meanwhile), track each on its own instead, as track_txn would."""
        pending, self.pending, self.pending_bytes = self.pending, [], 0
        if not pending:
            return
        ensure_transaction(self.session)
        try:
            with savepoint(self.session):
                store.insert_emails_txn(self.session, [p.rows for p in pending])
        except (DuplicateKey, *_REFUSED):
            for p in pending:
                self.results[p.index] = engine._guarded(self.session, p.request, self.config, p.parsed,
                                                 reads=self.resolved)[0]
            return
        replies.link_waiting_replies_txn(self.session, [(p.parsed.message_id or "", p.rows.activity["id"])
                                                        for p in pending])
        for p in pending:
            _log_tracked(p.request, p.parsed, p.plan, p.rows.activity["id"])


def track_many_txn(session: Session, requests: Iterable[TrackRequest], config: TrackingConfig) -> list[TrackResult]:
    """``track_txn`` for each request in order, in the caller's transaction, with the results and rows it
    would give one after the other, for less: one query for the batch's duplicates, one address
    resolution, one correlation query, and the tracked messages' rows written with one INSERT per table."""
    requests = list(requests)
    parsed: list[ParsedMessage | None] = []
    for request in requests:
        p = request.parsed
        if p is None and len(request.raw) <= min(BATCH_MESSAGE_BYTES, config.max_message_bytes):
            try:
                p = parse_message(request.raw)
            except Exception:  # tracked on its own below, which records why not
                p = None
        parsed.append(p)
    batch = _Batch(session, config, [(r, p) for r, p in zip(requests, parsed) if p is not None])
    for index, (request, p) in enumerate(zip(requests, parsed)):
        batch.index = index
        if p is None or batch.depends_on_batch(p):
            batch.flush()
            # a message the batch could not parse was not in its address resolution
            result, p = engine._guarded(session, request, config, p, reads=None if p is None else batch.resolved)
            if result.outcome == "tracked" and p is not None:
                batch.tracked(p)
        else:
            result = engine._guarded(session, request, config, p, batch)[0]
        batch.results.append(result)
        if batch.pending_bytes >= BATCH_PENDING_BYTES:
            batch.flush()
    batch.flush()
    return batch.results
