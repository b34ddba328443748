"""One user's sync of one entity: list both sides, fetch what changed, plan, apply; then save the token.

1. The mailbox lists its changes since the saved sync token (a rejected token - EWS
   ErrorInvalidSyncStateData, Graph 410 - means a full listing: no duplicates, no deletes follow from
   it, because links and CRM ids decide, not the listing's newness). A delta is completed from the
   links into a listing of every linked item; pending creates are looked up by their CRM id.
2. The CRM lists the user's scope and linked records with their versions.
3. Values are fetched only where a version moved or no link exists (a sync of unchanged linked items
   makes read calls only: one listing per side).
4. The pure planner decides; the applier performs the actions one by one, each saving its link.
5. A failing item is recorded (``abook sync status``) and skipped; the rest go on. The sync token is
   saved after the batch is committed, and only when no item failed short of the retry cap, so a failed
   item comes round again next cycle (docs/sync.md invariants 16 and 19). Mailbox-wide errors (the server
   is down, the credentials are refused) end the run for the service's back-off.

Everything runs through two runners (``store.run`` and the ``mail`` runner), so the same code serves the
daemon (thread pools) and the command line and tests (inline).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Mapping, Optional

from twisted.logger import Logger

from abook.monitor import metrics
from abook.errors import NotFound
from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxError, MailboxMissing, Unavailable
from abook.mailbox.pim import series
from abook.mailbox.pim.interfaces import Changes, IPimStore, Item, ItemGone, StaleItem
from abook.mailbox.pim.schema import value_hash
from abook.store import Store
from abook.store.sync_conflicts import clear_issues_txn, conflicts_txn, issues_txn, record_issue_txn
from abook.store.sync_links import (
    LinkRecord,
    clear_verify_txn,
    links_txn,
    record_run_txn,
    save_token_txn,
    sync_state_txn,
)
from abook.sync import crm
from abook.sync.apply import Applier
from abook.sync.crm import LdapIds
from abook.sync.model import Action, CrmEntry, MailboxEntry, MassDelete, PlanInput, Policy
from abook.sync.plan import plan
from abook.threads import IBlockingRunner

#: errors that concern the whole mailbox, not one item: the run stops and the service backs off
MAILBOX_WIDE = (Unavailable, AuthFailed, MailboxMissing)
FETCH_CHUNK = 100
#: link states whose item is known to be in the mailbox: a delta listing is completed from them
LISTED = ("linked", "detached")


@dataclass
class EntityReport:
    entity: str
    actions: list[Action] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    #: items that failed this run: (item, error)
    failed: list[tuple[str, str]] = field(default_factory=list)
    #: the run's error, if it stopped (mass-delete guard, mailbox unavailable)
    error: Optional[str] = None
    token_saved: bool = False
    full_listing: bool = False

    @property
    def writes(self) -> int:
        return sum(1 for a in self.actions if a.writes)


class Interrupted(Exception):
    """Raised by a test's crash hook to stop a sync between two writes."""


class SyncEngine:
    log = Logger()

    def __init__(self, store: Store, mail: IBlockingRunner, policies: Mapping[str, Policy], *,
                 ldap_ids: LdapIds | None = None, max_item_failures: int = 5,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.store = store
        self.mail = mail
        self.policies = dict(policies)
        self.ldap_ids = ldap_ids
        self.max_item_failures = max_item_failures
        self.clock = clock

    async def plan(self, user_id: str, mailbox: IPimStore, entity: str, *, force: bool = False) -> EntityReport:
        """What a sync would do now, writing nothing (``abook sync plan``)."""
        report = EntityReport(entity)
        try:
            inp, _ = await self._prepare(user_id, mailbox, entity, self.clock(), force)
            report.actions = plan(inp)
        except MassDelete as e:
            report.error = str(e)
        report.counts = _count(report.actions)
        return report

    async def sync(self, user_id: str, mailbox: IPimStore, entity: str, *, force: bool = False,
                   crash: Optional[Callable[[str], None]] = None) -> EntityReport:
        now = self.clock()
        report = EntityReport(entity)
        try:
            inp, changes = await self._prepare(user_id, mailbox, entity, now, force)
            report.full_listing = changes.complete
            report.actions = plan(inp)
            links = list(inp.links)
        except MassDelete as e:
            report.error = str(e)
            await self.store.run(record_run_txn, user_id, entity, at=now, error=report.error, counts={})
            self.log.warn("sync {user} {entity}: {error}", user=user_id, entity=entity, error=report.error)
            return report
        applier = Applier(self.store, self.mail, mailbox, user_id, entity, now, crash)
        known = {i.item for i in await self.store.run(issues_txn, user_id, entity)}
        done: list[str] = []
        blocking = False
        for action in report.actions:
            item = _item_key(action)
            try:
                await applier.apply(action)
            except Interrupted:
                raise
            except MAILBOX_WIDE:
                raise
            except (ItemGone, StaleItem, NotFound):
                continue  # changed under us since it was listed: the next cycle sees it as it is now
            except Exception as e:  # noqa: BLE001 - one bad item is recorded and skipped, never blocks the rest
                message = f"{type(e).__name__}: {e}"[:2000]
                attempts = await self.store.run(record_issue_txn, user_id, entity, item, action.kind, message)
                report.failed.append((item, message))
                blocking = blocking or attempts < self.max_item_failures
                self.log.warn("sync {user} {entity}: {action} of {item} failed ({attempts} so far): {error}",
                              user=user_id, entity=entity, action=action.kind, item=item, attempts=attempts,
                              error=message)
                continue
            metrics.get().sync_applied(entity, (action,))
            if item in known:
                done.append(item)
        if done:
            await self.store.run(clear_issues_txn, user_id, entity, done)
        if not blocking:
            await self.store.run(save_token_txn, user_id, entity, changes.token)
            verified = [link.id for link in links if link.verify and link.id is not None]
            if verified:  # the saved token's listing came after their creation: a delta reports them from now on
                await self.store.run(clear_verify_txn, verified)
            report.token_saved = True
        report.counts = _count(report.actions)
        error = f"{len(report.failed)} item(s) failed" if report.failed else None
        await self.store.run(record_run_txn, user_id, entity, at=now, error=error, counts=report.counts)
        return report

    # -- listing and fetching -------------------------------------------------------------------------

    async def _prepare(self, user_id: str, mailbox: IPimStore, entity: str, now: datetime,
                       force: bool) -> tuple[PlanInput, Changes]:
        state = await self.store.run(sync_state_txn, user_id, entity)
        links: list[LinkRecord] = await self.store.run(links_txn, user_id, entity)
        fresh = state.token is None
        try:
            changes = await self.mail.run(mailbox.changes_blocking, entity, state.token)
        except CursorInvalid:
            self.log.info("sync {user} {entity}: the sync token was rejected; listing everything", user=user_id,
                          entity=entity)
            changes = await self.mail.run(mailbox.changes_blocking, entity, None)
            fresh = True
        listing = self._listing(links, changes)
        by_item = {link.mailbox_id: link for link in links if link.state in LISTED and link.mailbox_id}
        if not changes.complete:  # items abook created after the token's listing: still there? And a fresh
            # listing that is not the whole folder (Graph's calendar window) reports no deletions at all: every
            # linked item it does not show is looked up, so one deleted while the token was lost is seen gone
            seen = {x.id for x in changes.changed}
            doubtful = [link.mailbox_id for link in by_item.values()
                        if (link.verify or fresh) and link.mailbox_id not in seen]
            present: set[str] = set()
            for i in range(0, len(doubtful), FETCH_CHUNK):
                present |= {it.id for it in await self.mail.run(mailbox.get_blocking, entity,
                                                                 doubtful[i:i + FETCH_CHUNK])}  # type: ignore[misc]
            for item_id in doubtful:
                if item_id not in present:
                    listing.pop(item_id, None)  # type: ignore[arg-type]
        crm_entries: list[CrmEntry] = await self.store.run(crm.crm_listing_txn, user_id, entity, now, self.ldap_ids)
        # open manual conflicts are read again every cycle: the token has moved past their change
        disputed = {c.crm_id for c in await self.store.run(conflicts_txn, user_id) if c.entity == entity}
        disputed |= {link.crm_id for link in links if link.resolve}  # resolved by an admin: settle it now
        in_scope = {c.id for c in crm_entries if c.in_scope}

        def read(item_id: str, etag: str) -> bool:
            """New, changed, disputed, or a detached copy whose record is back (its edits were not kept)."""
            link = by_item.get(item_id)
            return (link is None or link.mailbox_etag != etag or link.crm_id in disputed
                    or (link.state == "detached" and link.crm_id in in_scope))

        wanted = [i for i, etag in listing.items() if read(i, etag)]
        for link in links:
            if link.state == "pending":
                found = await self.mail.run(mailbox.find_blocking, entity, link.crm_id)
                if found is not None and found.id not in listing:
                    listing[found.id] = found.etag
                    wanted.append(found.id)
        items: dict[str, Item] = {}
        for i in range(0, len(wanted), FETCH_CHUNK):
            for item in await self.mail.run(mailbox.get_blocking, entity, wanted[i:i + FETCH_CHUNK]):
                items[item.id] = item
        policy = self.policies[entity]
        entries = []
        for item_id, etag in listing.items():
            if item_id in items:
                it = items[item_id]
                entries.append(MailboxEntry(it.id, it.etag, dict(it.values), it.crm_id,
                                            policy.tracked_category in it.categories, it.uid))
            elif item_id in by_item:
                entries.append(MailboxEntry(item_id, etag))
            # else: listed, then gone before it was fetched
        by_crm = {link.crm_id: link for link in links}
        need = [c.id for c in crm_entries
                if c.id not in by_crm or by_crm[c.id].state == "pending" or by_crm[c.id].crm_etag != c.etag
                or c.id in disputed]
        values = await self.store.run(crm.crm_values_txn, entity, need, now) if need else {}
        filled = [CrmEntry(c.id, c.crm_type, c.etag, c.in_scope, c.owned, c.pending, c.locked, c.uid, values.get(c.id))
                  if c.id in values else c for c in crm_entries]
        inp = PlanInput(user_id, entity, tuple(links), tuple(filled), tuple(entries), policy, now, force)
        return inp, changes

    @staticmethod
    def _listing(links: list[LinkRecord], changes: Changes) -> dict[str, str]:
        linked = {link.mailbox_id: link.mailbox_etag or "" for link in links
                  if link.state in LISTED and link.mailbox_id}
        if changes.complete:
            listing = {x.id: x.etag for x in changes.changed}
        else:
            listing = dict(linked)
            series.drop_series(listing, changes.deleted)  # a deleted item, or all of a series' occurrences
            for x in changes.changed:
                listing[x.id] = x.etag
        series.keep_past(listing, linked, changes.extra)  # occurrences behind the window are history
        return listing


def _item_key(action: Action) -> str:
    crm_entry = getattr(action, "crm", None)
    if crm_entry is not None:
        return f"crm:{crm_entry.id}"
    if action.link is not None:
        return f"crm:{action.link.crm_id}"
    mailbox_entry = getattr(action, "mailbox", None)
    return f"mailbox:{mailbox_entry.id if mailbox_entry is not None else '?'}"


def _count(actions: list[Action]) -> dict[str, int]:
    out: dict[str, int] = {}
    for a in actions:
        if a.kind == "update" and not a.writes:
            out["refresh"] = out.get("refresh", 0) + 1
        else:
            out[a.kind] = out.get(a.kind, 0) + 1
    return out


__all__ = ["EntityReport", "Interrupted", "SyncEngine", "MailboxError", "value_hash"]
