"""The applier: performs one planned action at a time, and saves its link right after it.

Each action's writes are ordered so that a crash at any point leaves something the next sync recognises:

* create in the mailbox: a ``pending`` link is committed first, then the item is created carrying the
  CRM id, then the link is completed. Interrupted, the next sync finds the item by its CRM id
  (``find_blocking``) and links it instead of creating a second one (mbsync's TUID idea);
* create in the CRM: the record and its link are one transaction; the CRM id is then written into
  the item, so a later move keeps the link;
* update: the mailbox write first, then the CRM write and the link in one transaction; interrupted in
  between, the next sync sees both sides holding the same values and only saves the link;
* deletes: the write, then the link goes.

Blocking mailbox calls run through the ``mail`` runner, store transactions through the store's runner.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any, Callable, Optional

from sqlalchemy.orm import Session

from abook.mailbox.pim.interfaces import IPimStore, ItemGone
from abook.mailbox.pim.schema import META_PREFIX, Values, mapped, value_hash
from abook.store import Store
from abook.store.sync_links import (
    LinkRecord,
    delete_link_txn,
    dump_values,
    save_link_txn,
)
from abook.store.sync_conflicts import record_conflict_txn
from abook.sync import crm
from abook.sync.model import (
    Action,
    Conflict,
    CreateCrm,
    CreateMailbox,
    DeleteCrm,
    DeleteMailbox,
    Link,
    Unlink,
    Update,
)
from abook.threads import IBlockingRunner


def _meta(values: Values) -> dict[str, Optional[str]]:
    return {k: v for k, v in values.items() if k.startswith(META_PREFIX)}


class Applier:
    def __init__(self, store: Store, mail: IBlockingRunner, mailbox: IPimStore, user_id: str, entity: str,
                 now: datetime, crash: Optional[Callable[[str], None]] = None) -> None:
        self.store = store
        self.mail = mail
        self.mailbox = mailbox
        self.user_id = user_id
        self.entity = entity
        self.now = now
        #: called with a step name between writes: tests make it raise to interrupt a sync there
        self.crash = crash or (lambda step: None)

    async def apply(self, action: Action) -> None:
        handler = getattr(self, "_" + action.kind)
        await handler(action)

    # -- helpers

    def _project(self, values: Values) -> dict[str, Optional[str]]:
        return {**self.mailbox.project(self.entity, mapped(values)), **_meta(values)}

    def _linked(self, base: Optional[LinkRecord], crm_type: str, crm_id: str, **changes: Any) -> LinkRecord:
        link = base if base is not None else LinkRecord(self.user_id, self.entity, crm_type, crm_id)
        crm_values = changes.pop("crm_values", None)
        mailbox_values = changes.pop("mailbox_values", None)
        if crm_values is not None:
            changes["crm_json"] = dump_values(crm_values)
            changes["crm_hash"] = value_hash(crm_values)
        if mailbox_values is not None:
            changes["mailbox_json"] = dump_values(mailbox_values)
            changes["mailbox_hash"] = value_hash(mailbox_values)
        return replace(link, crm_type=crm_type, crm_id=crm_id, state="linked", resolve=None, failures=0, **changes)

    async def _db(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.store.run(fn, *args)

    async def _mail(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.mail.run(fn, *args)

    # -- actions

    async def _create_mailbox(self, a: CreateMailbox) -> None:
        c = a.crm
        pending = replace(a.link, state="pending", mailbox_id=None, mailbox_etag=None, resolve=None) if a.link \
            else LinkRecord(self.user_id, self.entity, c.crm_type, c.id, state="pending", owned=c.owned)
        pending = await self._db(save_link_txn, pending)
        self.crash("create_mailbox:pending")
        listed = await self._mail(self.mailbox.create_blocking, self.entity, dict(a.values), c.id, a.notify)
        self.crash("create_mailbox:created")
        link = self._linked(pending, c.crm_type, c.id, mailbox_id=listed.id, mailbox_etag=listed.etag, crm_etag=c.etag,
                            owned=c.owned, verify=True, crm_values=a.crm_values,
                            mailbox_values={**self._project(a.values), "__tracked": "0"})
        await self._db(save_link_txn, link)

    async def _create_crm(self, a: CreateCrm) -> None:
        m = a.mailbox
        mailbox_values = {**mapped(m.values or {}), "__tracked": "1" if m.tracked else "0"}

        def create(session: Session) -> LinkRecord:
            if a.link is not None and a.link.id is not None:
                delete_link_txn(session, a.link.id)  # deleted in the CRM, changed in the mailbox: a new record
            crm_id, etag, values = crm.create_crm_txn(session, self.user_id, self.entity, a.crm_type, a.values, self.now)
            link = self._linked(None, a.crm_type, crm_id, mailbox_id=m.id, mailbox_etag=m.etag, crm_etag=etag,
                                owned=True, crm_values={**values, **a.crm_meta}, mailbox_values=mailbox_values)
            return save_link_txn(session, link)

        link = await self._db(create)
        self.crash("create_crm:created")
        try:  # the CRM id goes into the item, so a move keeps the link
            listed = await self._mail(self.mailbox.update_blocking, self.entity, m.id, m.etag, {}, link.crm_id)
        except ItemGone:
            return
        await self._db(save_link_txn, replace(link, mailbox_etag=listed.etag))

    async def _link(self, a: Link) -> None:
        link = self._linked(a.link, a.crm.crm_type, a.crm.id, mailbox_id=a.mailbox.id, mailbox_etag=a.mailbox.etag,
                            crm_etag=a.crm.etag, owned=a.crm.owned, crm_values=a.crm_values,
                            mailbox_values=a.mailbox_values)
        await self._db(save_link_txn, link)

    async def _update(self, a: Update) -> None:
        assert a.link is not None
        c, m = a.crm, a.mailbox
        mailbox_etag = m.etag
        mailbox_values = self._project(a.mailbox_values)
        if a.to_mailbox:
            listed = await self._mail(self.mailbox.update_blocking, self.entity, m.id, m.etag, dict(a.to_mailbox))
            mailbox_etag = listed.etag
            self.crash("update:mailbox")

        def save(session: Session) -> None:
            crm_etag, crm_values = c.etag, dict(a.crm_values)
            if a.to_crm:
                crm_etag, written = crm.update_crm_txn(session, self.entity, c.id, a.to_crm, self.now)
                crm_values = {**written, **_meta(a.crm_values)}
            if a.conflict:
                policy = "manual" if a.link.resolve else (a.winner or "manual")  # type: ignore[union-attr]
                record_conflict_txn(session, self.user_id, self.entity, c.crm_type, c.id, m.id, policy, a.winner,
                                    a.conflict)
            save_link_txn(session, self._linked(a.link, c.crm_type, c.id, mailbox_id=m.id, mailbox_etag=mailbox_etag,
                                                crm_etag=crm_etag, owned=c.owned, crm_values=crm_values,
                                                mailbox_values=mailbox_values))

        await self._db(save)

    async def _conflict(self, a: Conflict) -> None:
        assert a.link is not None
        await self._db(record_conflict_txn, self.user_id, self.entity, a.crm.crm_type, a.crm.id, a.mailbox.id,
                       "manual", None, a.fields)

    async def _delete_mailbox(self, a: DeleteMailbox) -> None:
        assert a.link is not None
        item_id = a.item_id or a.link.mailbox_id
        if item_id:
            await self._mail(self.mailbox.delete_blocking, self.entity, item_id, a.etag or a.link.mailbox_etag,
                             a.notify)
        self.crash("delete_mailbox:deleted")
        await self._db(delete_link_txn, a.link.id)

    async def _delete_crm(self, a: DeleteCrm) -> None:
        assert a.link is not None
        link = a.link

        def delete(session: Session) -> None:
            crm.delete_crm_txn(session, self.entity, link.crm_id)
            delete_link_txn(session, link.id)  # type: ignore[arg-type]

        await self._db(delete)

    async def _unlink(self, a: Unlink) -> None:
        assert a.link is not None
        if a.detach:  # the copy stays, carrying the CRM id: keep the pair's last-synced values for its return
            base_m = {**a.link.mailbox_values, "__tracked": "0"}
            await self._db(save_link_txn, a.link.with_values(mailbox=base_m, mailbox_hash=value_hash(base_m),
                                                             state="detached", resolve=None,
                                                             mailbox_id=a.item_id or a.link.mailbox_id))
        elif a.tombstone:
            await self._db(save_link_txn, replace(a.link, state="tombstone", mailbox_id=None, mailbox_etag=None,
                                                  resolve=None))
        else:
            await self._db(delete_link_txn, a.link.id)
