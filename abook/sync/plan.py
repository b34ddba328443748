"""The pure planner: both listings + the links + the policy -> the actions that bring the sides in step.

It reads nothing and writes nothing (vdirsyncer's ``_get_actions``); ``abook sync plan`` prints what it
returns. The rules are docs/sync.md's:

* A side changed when its version moved *and* its mapped values differ from the link's (a new change key
  with the same content is no change: no echo, no churn).
* Linked items merge field by field: a field one side changed flows to the other if its direction allows
  (one-way fields edited on the wrong side are not copied back); a field both sides changed to different
  values is a conflict, settled by the entity's policy (``crm``, ``mailbox``) with both values recorded,
  or left for ``abook sync resolve`` (``manual``: nothing written).
* Scope: CRM -> mailbox follows the user's filter; a tracked item (category) stays in scope while it
  carries the category. Leaving scope removes a contact's mailbox copy (unless the copy changed) and
  unlinks an activity; the CRM record is never touched by it.
* Deletes follow docs/sync.md section 3; a delete needs evidence (the other side unchanged since the last
  sync, else modify beats delete). A completed or cancelled CRM appointment ignores mailbox edits.
  Only the organiser's sync creates or cancels a meeting, and only a future one notifies anybody.
* A linked item that vanished while an unlinked item carries its CRM id was moved: the link follows it.
  A pending create whose item exists (the CRM id is in it) is linked, never created twice.
* Mass-delete guard: a side that lists nothing while links exist stops the sync (``MassDelete``).
"""

from __future__ import annotations

from typing import Mapping, Optional

from abook.mailbox.pim.schema import FIELDS, Values, mapped, value_hash
from abook.store.sync_links import LinkRecord
from abook.sync.model import (
    Action,
    Conflict,
    CreateCrm,
    CreateMailbox,
    CrmEntry,
    DeleteCrm,
    DeleteMailbox,
    Link,
    MailboxEntry,
    MassDelete,
    PlanInput,
    Unlink,
    Update,
)

TO_MAILBOX = ("both", "to_mailbox")
#: a first pairing's base for a field whose last-synced value nobody knows: it differs from both sides
_UNKNOWN = "\x00unknown"

TO_CRM = ("both", "to_crm")
ON_CREATE_TO_MAILBOX = ("both", "to_mailbox", "fixed")
ON_CREATE_TO_CRM = ("both", "to_crm", "fixed")
#: the CRM type a tracked mailbox item becomes
NEW_CRM_TYPE = {"contact": "contact", "appointment": "appointment", "task": "task"}


def plan(inp: PlanInput) -> list[Action]:
    return _Planner(inp).run()


def _flag(values: Mapping[str, Optional[str]], key: str) -> bool:
    return values.get(key) == "1"


class _Planner:
    def __init__(self, inp: PlanInput) -> None:
        self.inp = inp
        self.entity = inp.entity
        self.policy = inp.policy
        self.names = [f.name for f in FIELDS[inp.entity]]
        self.crm = {c.id: c for c in inp.crm}
        self.mailbox = {m.id: m for m in inp.mailbox}
        linked = {link.mailbox_id for link in inp.links if link.state in ("linked", "detached") and link.mailbox_id}
        self.free_by_crm_id: dict[str, MailboxEntry] = {}
        self.free_by_uid: dict[str, MailboxEntry] = {}
        for m in inp.mailbox:
            if m.id in linked:
                continue
            if m.crm_id:
                self.free_by_crm_id.setdefault(m.crm_id, m)
            if m.uid:
                self.free_by_uid.setdefault(m.uid, m)
        self.crm_by_uid = {c.uid: c for c in inp.crm if c.uid}
        self.done_crm: set[str] = set()
        self.done_mailbox: set[str] = set(linked)
        self.pending: dict[str, LinkRecord] = {}
        self.actions: list[Action] = []

    # -- the whole plan -------------------------------------------------------------------------------

    def run(self) -> list[Action]:
        self._guard()
        for link in self.inp.links:
            self._link(link)
        for c in self.inp.crm:
            if c.id not in self.done_crm:
                self._new_crm(c)
        for m in self.inp.mailbox:
            if m.id not in self.done_mailbox:
                self._new_mailbox(m)
        return self.actions

    def _guard(self) -> None:
        if self.inp.force or not self.policy.mass_delete_guard:
            return
        links = [link for link in self.inp.links if link.state == "linked"]
        if len(links) < max(self.policy.mass_delete_min_links, 1):
            return
        if not self.inp.mailbox:
            raise MassDelete(f"the mailbox lists no {self.entity} while {len(links)} are linked: nothing was "
                             "written (run `abook sync now --force` if they really are all gone)")
        if not self.inp.crm:
            raise MassDelete(f"the CRM lists no {self.entity} for this user while {len(links)} are linked: "
                             "nothing was written (run `abook sync now --force` if that is meant)")

    def _emit(self, action: Action) -> None:
        self.actions.append(action)

    def _take_free(self, m: Optional[MailboxEntry]) -> Optional[MailboxEntry]:
        if m is None or m.id in self.done_mailbox:
            return None
        self.done_mailbox.add(m.id)
        return m

    # -- links ----------------------------------------------------------------------------------------

    def _link(self, link: LinkRecord) -> None:
        c = self.crm.get(link.crm_id)
        if link.state == "pending":
            self.done_crm.add(link.crm_id)
            m = self._take_free(self.free_by_crm_id.get(link.crm_id))
            if m is not None and c is not None:
                self._first_pairing(link, c, m)
            elif c is not None and c.in_scope:
                self.done_crm.discard(link.crm_id)
                self.pending[link.crm_id] = link  # the create did not happen: do it now, on this row
            else:
                self._emit(Unlink(link, "the record a create was pending for is gone"))
            return
        if link.state == "tombstone":
            self.done_crm.add(link.crm_id)
            if c is None or not c.in_scope:
                self._emit(Unlink(link, "the record left the filter or was deleted"))
            elif c.etag != link.crm_etag and c.values is not None and value_hash(c.values) != link.crm_hash:
                self._create_mailbox(c, link)  # deleted in the mailbox, changed in the CRM since: back it comes
            return
        self.done_crm.add(link.crm_id)
        m = self.mailbox.get(link.mailbox_id or "")
        if m is None:
            m = self._take_free(self.free_by_crm_id.get(link.crm_id))  # moved: same CRM id, new item id
        if m is not None:
            self.done_mailbox.add(m.id)
        if link.state == "detached":
            self._detached(link, c, m)
        elif c is not None and m is not None:
            self._pair(link, c, m)
        elif c is not None:
            self._mailbox_deleted(link, c)
        elif m is not None:
            self._crm_deleted(link, m)
        else:
            self._emit(Unlink(link, "gone on both sides"))

    def _pair(self, link: LinkRecord, c: CrmEntry, m: MailboxEntry) -> None:
        base_c, base_m = link.crm_values, link.mailbox_values
        cur_c = mapped(c.values) if c.values is not None else mapped(base_c)
        cur_m = mapped(m.values) if m.values is not None else mapped(base_m)
        tracked = m.tracked if m.values is not None else _flag(base_m, "__tracked")
        if not c.in_scope and not tracked:
            if _flag(base_m, "__tracked"):
                self._emit(Unlink(link, "the Tracked category was removed", detach=True, item_id=m.id))
            elif self.entity == "contact":
                if m.values is not None and value_hash(cur_m) != link.mailbox_hash:
                    self._emit(Unlink(link, "left the filter, but the mailbox copy changed: it stays", detach=True,
                                      item_id=m.id))
                else:
                    self._emit(DeleteMailbox(link, "left the filter", item_id=m.id, etag=m.etag))
            else:
                self._emit(Unlink(link, "left the filter", detach=True, item_id=m.id))
            return
        to_m: dict[str, Optional[str]] = {}
        to_c: dict[str, Optional[str]] = {}
        conflict: dict[str, dict[str, Optional[str]]] = {}
        frozen = self.entity == "appointment" and not c.owned  # an attendee's copy: Exchange keeps it in step
        for name in self.names:
            direction = "none" if frozen else self.policy.direction(name, c.crm_type)
            if direction in ("none", "fixed"):
                continue
            changed_c = cur_c.get(name) != base_c.get(name)
            changed_m = cur_m.get(name) != base_m.get(name)
            if c.locked:
                changed_m = False  # a completed or cancelled appointment ignores mailbox edits
            if changed_c and changed_m and direction == "both":
                if cur_c.get(name) != cur_m.get(name):
                    conflict[name] = {"crm": cur_c.get(name), "mailbox": cur_m.get(name)}
            elif changed_c and direction in TO_MAILBOX:
                if cur_c.get(name) != cur_m.get(name):
                    to_m[name] = cur_c.get(name)
            elif changed_m and direction in TO_CRM:
                if cur_m.get(name) != cur_c.get(name):
                    to_c[name] = cur_m.get(name)
        winner = None
        if conflict:
            winner = link.resolve or self.policy.conflict
            if winner == "manual":
                self._emit(Conflict(link, c, m, conflict))
                return
            for name, both in conflict.items():
                if winner == "crm":
                    to_m[name] = both["crm"]
                else:
                    to_c[name] = both["mailbox"]
        moved = (c.etag != link.crm_etag or m.etag != link.mailbox_etag or m.id != link.mailbox_id
                 or c.owned != link.owned or link.resolve is not None or tracked != _flag(base_m, "__tracked"))
        if not (to_m or to_c or conflict or moved):
            return
        self._emit(Update(link, c, m, to_m, to_c, self._crm_snapshot(c, {**cur_c, **to_c}),
                          self._mailbox_snapshot(m, {**cur_m, **to_m}, tracked), conflict, winner))

    def _detached(self, link: LinkRecord, c: Optional[CrmEntry], m: Optional[MailboxEntry]) -> None:
        """A pair the sync left alone (out of the filter, untracked): forget it once either side is gone; merge
        it again from its last-synced values once the record is back in the filter or the item tracked."""
        if c is None or m is None:
            self._emit(Unlink(link, "a detached copy's other side is gone"))
        elif c.in_scope or (m.values is not None and m.tracked):
            self._pair(link, c, m)

    def _first_pairing(self, link: Optional[LinkRecord], c: CrmEntry, m: MailboxEntry) -> None:
        """Pair a record and an item that have no common last-synced values yet, and settle their differences
        in this same sync (invariants 3 and 15).

        A pending create being recovered (``link`` is its pending row) was written from the CRM's values, so
        what the item holds is the base and whatever the CRM changed since flows to the mailbox, as it would
        have after an uninterrupted create. Without a pending row nobody knows which side moved: every field
        that differs counts as changed on both sides, and the entity's conflict policy settles it (``manual``
        lists it for ``abook sync resolve``). A recovered create whose record has left the filter since is
        treated as the linked pair it would have been: its copy leaves the mailbox in this same sync.
        """
        cur_c, cur_m = mapped(c.values or {}), mapped(m.values or {})
        differ = [n for n in self.names if self.policy.direction(n, c.crm_type) not in ("none", "fixed")
                  and cur_c.get(n) != cur_m.get(n)]
        if (self.entity == "appointment" and not c.owned) or (not differ and (c.in_scope or m.tracked)):
            self._emit(Link(link, c, m, self._crm_snapshot(c, c.values or {}), self._mailbox_snapshot(m)))
            return
        # differing, or a create recovered after its record left the filter: what a linked pair would do
        if link is not None and link.state == "pending":
            base = dict(cur_m)
        else:
            base = {n: (_UNKNOWN if n in differ else cur_c.get(n)) for n in set(cur_c) | set(cur_m)}
        base_m = {**base, "__tracked": "1" if m.tracked else "0"}
        start = link if link is not None else LinkRecord(self.inp.user_id, self.entity, c.crm_type, c.id)
        start = start.with_values(crm=base, mailbox=base_m, crm_hash=value_hash(base), mailbox_hash=value_hash(base_m),
                                  crm_etag=None, mailbox_etag=None, mailbox_id=m.id, owned=c.owned)
        if start.state != "pending" and self.policy.conflict == "manual" and start.resolve is None:
            self._emit(Link(start, c, m, base, base_m))  # linked with an unknown base: listed until resolved
        self._pair(start, c, m)

    def _mailbox_deleted(self, link: LinkRecord, c: CrmEntry) -> None:
        if not c.in_scope:
            self._emit(Unlink(link, "deleted in the mailbox after leaving the filter"))
            return
        if self.entity == "appointment" and not c.owned:
            self._emit(Unlink(link, "an attendee deleted their copy"))
            return
        if c.values is not None and value_hash(c.values) != link.crm_hash:
            self._create_mailbox(c, link)  # modify beats delete
            return
        if self.entity == "appointment" and c.pending:
            self._emit(DeleteCrm(link, "the organiser deleted a pending appointment"))
        elif self.entity == "task" and c.pending and self.policy.delete_open_tasks:
            self._emit(DeleteCrm(link, "an open task was deleted in the mailbox"))
        else:
            self._emit(Unlink(link, "deleted in the mailbox; the CRM record is kept", tombstone=True))

    def _crm_deleted(self, link: LinkRecord, m: MailboxEntry) -> None:
        base_m = link.mailbox_values
        if m.values is not None and value_hash(m.values) != link.mailbox_hash:
            if m.tracked:
                self._emit(self._create_crm(link, m))
            else:
                self._emit(Unlink(link, "deleted in the CRM, changed in the mailbox: the mailbox copy stays"))
            return
        if self.entity == "contact":
            if link.owned:
                self._emit(Unlink(link, "the owner's copy stays"))
            else:
                self._emit(DeleteMailbox(link, "deleted in the CRM", item_id=m.id, etag=m.etag))
        elif self.entity == "appointment":
            if link.owned and _flag(link.crm_values, "__pending"):
                self._emit(DeleteMailbox(link, "the organiser's pending appointment was deleted in the CRM",
                                         notify=_flag(link.crm_values, "__future"), item_id=m.id, etag=m.etag))
            else:
                self._emit(Unlink(link, "deleted in the CRM; past, completed or not organised here: it stays"))
        else:
            if (m.values or base_m).get("status") == "completed":
                self._emit(Unlink(link, "deleted in the CRM; completed in the mailbox: it stays"))
            else:
                self._emit(DeleteMailbox(link, "deleted in the CRM", item_id=m.id, etag=m.etag))

    # -- records and items without a link ---------------------------------------------------------

    def _new_crm(self, c: CrmEntry) -> None:
        if not c.in_scope:
            return
        m = self._take_free(self.free_by_crm_id.get(c.id))
        if m is None and self.entity == "appointment" and c.uid:
            m = self._take_free(self.free_by_uid.get(c.uid))
        if m is not None:
            self.done_crm.add(c.id)
            self._first_pairing(self.pending.get(c.id), c, m)
            return
        if self.entity == "appointment" and not c.owned:
            return  # an attendee's copy comes from the organiser's server, never from abook
        self.done_crm.add(c.id)
        self._create_mailbox(c, self.pending.get(c.id))

    def _new_mailbox(self, m: MailboxEntry) -> None:
        if m.values is None:
            return
        if m.crm_id:
            c = self.crm.get(m.crm_id)
            if c is not None and c.id not in self.done_crm and (m.tracked or c.in_scope):
                self.done_crm.add(c.id)
                self._first_pairing(None, c, m)
            return  # another user's record, or one deleted: the item is left alone
        if self.entity == "appointment" and m.uid:
            c = self.crm_by_uid.get(m.uid)
            if c is not None:
                if c.id not in self.done_crm:
                    self.done_crm.add(c.id)
                    self._first_pairing(None, c, m)
                return
        if m.tracked:
            self._emit(self._create_crm(None, m))

    # -- values ---------------------------------------------------------------------------------------

    def _create_mailbox(self, c: CrmEntry, link: Optional[LinkRecord]) -> None:
        assert c.values is not None, "the engine fetches the values of every record without a link"
        values = {n: c.values.get(n) for n in self.names if self.policy.direction(n, c.crm_type) in ON_CREATE_TO_MAILBOX}
        notify = False
        if self.entity == "appointment":
            # only the organiser's open, future meeting invites anybody (a completed or cancelled one, though
            # still ahead, is created silently: invariant 21)
            notify = bool(c.owned and not c.locked and c.values.get("attendees") and self._future(c.values.get("when")))
        self._emit(CreateMailbox(link, c, values, notify, self._crm_snapshot(c, c.values)))

    def _create_crm(self, link: Optional[LinkRecord], m: MailboxEntry) -> CreateCrm:
        assert m.values is not None
        values = self._for_crm(m.values)
        meta: dict[str, Optional[str]] = {}
        if self.entity == "appointment":  # a new record is open: pending unless it has already ended
            when = values.get("when") or ""
            end = when.split("/", 1)[1] if "/" in when else ""
            meta = {"__pending": "1" if not end or self._after_now(end) else "0",
                    "__future": "1" if self._future(when) else "0"}
        return CreateCrm(link, m, NEW_CRM_TYPE[self.entity], values, meta)

    def _for_crm(self, values: Values) -> dict[str, Optional[str]]:
        crm_type = NEW_CRM_TYPE[self.entity]
        return {n: values.get(n) for n in self.names if self.policy.direction(n, crm_type) in ON_CREATE_TO_CRM}

    def _future(self, when: Optional[str]) -> bool:
        return bool(when) and self._after_now(when.split("/", 1)[0])  # type: ignore[union-attr]

    def _after_now(self, stamp: str) -> bool:
        """``stamp`` (``YYYY-MM-DD`` or ``YYYY-MM-DDTHH:MM:SSZ``, as ``when`` holds them) is after now."""
        now = self.inp.now.strftime("%Y-%m-%dT%H:%M:%SZ")
        return stamp > (now[:10] if len(stamp) == 10 else now)

    def _crm_snapshot(self, c: CrmEntry, values: Values) -> dict[str, Optional[str]]:
        out = dict(mapped(values))
        if self.entity == "appointment":
            out["__pending"] = "1" if c.pending else "0"
            out["__future"] = "1" if self._future(values.get("when")) else "0"
        return out

    def _mailbox_snapshot(self, m: MailboxEntry, values: Optional[Values] = None,
                          tracked: Optional[bool] = None) -> dict[str, Optional[str]]:
        out = dict(mapped(values if values is not None else (m.values or {})))
        out["__tracked"] = "1" if (m.tracked if tracked is None else tracked) else "0"
        return out
