"""A small organisation, a store and in-memory mailboxes for the sync tests, driven without a reactor.

``World`` holds one SQLite store (its transactions inline), a ``MemoryMailbox`` per user and a
``SyncEngine`` whose clock the test sets. ``sync(user)`` runs every entity once and returns the reports.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from typing import Any, Optional

from twisted.internet import defer

from abook.mailbox.pim.interfaces import IPimStore
from abook.mailbox.pim.memory import MemoryMailbox
from abook.store import Store, activities, models
from abook.store.activities import PartyRecord
from abook.store.enums import SYNC_ENTITIES
from abook.store.models import Role, RolePrivilege, SystemUser, BusinessUnit, ReadDepth
from abook.sync.engine import EntityReport, SyncEngine
from abook.sync.model import Policy
from abook.threads import SyncRunner

NOW = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)
USERS = ("paul", "laura")


def run(d: Any) -> Any:
    """The result of a coroutine or Deferred that completed synchronously (inline runners)."""
    d = defer.ensureDeferred(d) if not isinstance(d, defer.Deferred) else d
    out: list[Any] = []
    d.addBoth(out.append)
    assert out, "the sync waited on something: the runners here are inline"
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


class World:
    def __init__(self, store: Store, policies: Optional[dict[str, Policy]] = None,
                 mailboxes: Optional[dict[str, IPimStore]] = None) -> None:
        self.store = store
        self.now = NOW
        self.ids: dict[str, str] = {}
        with store.transaction() as s:
            unit = BusinessUnit(name="Unit")
            s.add(unit)
            s.flush()
            role = Role(name="Everything")
            s.add(role)
            s.flush()
            for entity in (*models.ENTITIES, "activity"):
                s.add(RolePrivilege(role_id=role.id, entity=entity, read_depth=int(ReadDepth.organisation)))
            for name in USERS:
                user = SystemUser(domainname=name, fullname=name.title(), internalemailaddress=f"{name}@example.com",
                                  business_unit_id=unit.id, statecode=0, sync_enabled=True)
                user.roles.append(role)
                s.add(user)
                s.flush()
                self.ids[name] = user.id
            self.unit = unit.id
        self.mailboxes: dict[str, Any] = mailboxes or {name: MemoryMailbox() for name in USERS}
        self.policies = policies or {e: Policy(e) for e in SYNC_ENTITIES}
        self.engine = SyncEngine(store, SyncRunner(), self.policies, clock=lambda: self.now)

    # -- the CRM side

    def contact(self, owner: str = "paul", **values: Any) -> str:
        with self.store.transaction() as s:
            values = {"statecode": 0, "firstname": "Ann", "lastname": "Lee", **values}
            c = models.Contact(owner_id=self.ids[owner], owningbusinessunit_id=self.unit, **values)
            c.fullname = " ".join(n for n in (c.firstname, c.lastname) if n)
            s.add(c)
            s.flush()
            return c.id

    def edit_contact(self, contact_id: str, **values: Any) -> None:
        with self.store.transaction() as s:
            c = s.get(models.Contact, contact_id)
            for k, v in values.items():
                setattr(c, k, v)
            c.modifiedon = self.bump()

    def crm_contact(self, contact_id: str) -> Optional[models.Contact]:
        with self.store.transaction() as s:
            c = s.get(models.Contact, contact_id)
            if c is not None:
                s.expunge(c)
            return c

    def appointment(self, organiser: str = "paul", attendees: tuple[str, ...] = (), start: datetime | None = None,
                    hours: float = 1, **values: Any) -> str:
        start = start or self.now + timedelta(days=1)
        with self.store.transaction() as s:
            parties = [PartyRecord("organiser", "systemuser", self.ids[organiser], f"{organiser}@example.com")]
            parties += [PartyRecord("required", "systemuser" if a in self.ids else None, self.ids.get(a),
                                    a if "@" in a else f"{a}@example.com") for a in attendees]
            values = {"subject": "Meeting", "scheduledstart": start, "scheduledend": start + timedelta(hours=hours),
                      **values}
            return activities.create_activity_txn(s, "appointment", self.ids[organiser], parties=parties, **values).id

    def task(self, owner: str = "paul", kind: str = "task", **values: Any) -> str:
        with self.store.transaction() as s:
            return activities.create_activity_txn(s, kind, self.ids[owner], **{"subject": "To do", **values}).id

    def edit_activity(self, activity_id: str, **values: Any) -> None:
        with self.store.transaction() as s:
            activities.update_activity_txn(s, activity_id, values)

    def activity(self, activity_id: str) -> Optional[activities.ActivityRecord]:
        with self.store.transaction() as s:
            a = s.get(models.Activity, activity_id)
            return activities.get_activity_txn(s, activity_id) if a is not None else None

    def delete(self, model: Any, record_id: str) -> None:
        with self.store.transaction() as s:
            s.delete(s.get(model, record_id))

    def bump(self) -> datetime:
        """A modifiedon later than any before (the store's clock may not move between two quick edits)."""
        self._tick = getattr(self, "_tick", 0) + 1
        return datetime.now(timezone.utc) + timedelta(seconds=self._tick)

    # -- syncing

    def sync(self, user: str = "paul", entities: tuple[str, ...] = SYNC_ENTITIES, **kw: Any) -> dict[str, EntityReport]:
        return {e: run(self.engine.sync(self.ids[user], self.mailboxes[user], e, **kw)) for e in entities}

    def plan(self, user: str = "paul", entity: str = "contact", **kw: Any) -> EntityReport:
        return run(self.engine.plan(self.ids[user], self.mailboxes[user], entity, **kw))

    def links(self, user: str = "paul", entity: str = "contact") -> list[Any]:
        from abook.store.sync_links import links_txn

        with self.store.transaction() as s:
            return links_txn(s, self.ids[user], entity)


def new_id() -> str:
    return str(uuid.uuid4())
