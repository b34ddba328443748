"""A Hypothesis state machine that mutates both sides at random and syncs (vdirsyncer's ``SyncMachine``).

Two users, each with a mailbox from ``make_mailbox`` (the in-memory one, or a Radicale collection). The
rules create, edit, delete, move and touch items, create, edit, delete, reassign and deactivate CRM
contacts, change a user's filter, make the next mailbox write fail, forget sync tokens, and sync - cleanly
or crashing at a random step. After every clean sync the invariants are checked:

* one link per record and per item, and every link's two ends exist (13);
* a second sync writes nothing on either side (1, 4, 23) and the two-way fields agree on both sides (3);
* no CRM contact disappears unless the machine deleted it (contacts are never deleted by sync: 11, 12);
* no item the user made untracked is ever deleted or changed by the sync;
* no two items in a mailbox carry the same CRM id (14, 17: no duplicates).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any, Callable, Optional

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from abook.mailbox.pim.schema import FIELDS
from abook.store import models
from abook.sync.engine import Interrupted
from abook.sync.model import Policy
from tests.unit.sync.conftest import migrated_store
from tests.unit.sync.world import USERS, World

TRACKED = ("Tracked to CRM",)
FIELDS_EDITED = ("jobtitle", "department", "telephone1", "mobilephone", "nickname", "description")
VALUES = st.sampled_from(["", "a", "b", "Chief", "+1 555 0100", "x y", "line 1\nline 2"])
PICK = st.integers(0, 1000)
TWO_WAY = [f.name for f in FIELDS["contact"] if f.direction == "both"]


class SyncMachine(RuleBasedStateMachine):
    make_mailbox: Callable[[str], Any] = None  # type: ignore[assignment]
    crash_allowed = True

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory(prefix="abook-machine-")
        mailboxes = {u: type(self).make_mailbox(u) for u in USERS}
        self.w = World(migrated_store(Path(self._dir.name)), mailboxes=mailboxes,
                       policies={e: Policy(e, conflict="crm") for e in ("contact", "appointment", "task")})
        self.crm_alive: set[str] = set()
        self.untracked: dict[tuple[str, str], dict[str, Optional[str]]] = {}  # (user, item) -> values
        self.synced_clean = False

    def teardown(self) -> None:
        for box in self.w.mailboxes.values():
            if hasattr(box, "destroy"):
                box.destroy()
        self.w.store.dispose()
        self._dir.cleanup()

    @initialize()
    def a_few_linked_contacts(self) -> None:
        """Start from linked contacts on both sides, so short runs exercise updates and deletes too."""
        for owner, last in (("paul", "Lee"), ("paul", "Kim"), ("laura", "Roe")):
            self.crm_alive.add(self.w.contact(owner=owner, lastname=last))
        self.w.mailboxes["paul"].user_create("contact", {"lastname": "Tracked"}, TRACKED)
        for user in USERS:
            self.w.sync(user, entities=("contact",))

    # -- the CRM side

    @rule(owner=st.sampled_from(USERS), last=st.sampled_from(["Lee", "Kim", "Roe"]))
    def crm_create(self, owner: str, last: str) -> None:
        self.crm_alive.add(self.w.contact(owner=owner, lastname=last))

    def _pick_crm(self, pick: int) -> str:
        with self.w.store.transaction() as s:  # in creation order: the same pick means the same record
            alive = [c for (c,) in s.query(models.Contact.id).order_by(models.Contact.createdon, models.Contact.lastname)
                     if c in self.crm_alive]
        return alive[pick % len(alive)]

    @precondition(lambda self: self.crm_alive)
    @rule(pick=PICK, name=st.sampled_from(FIELDS_EDITED), value=VALUES)
    def crm_edit(self, pick: int, name: str, value: str) -> None:
        cid = self._pick_crm(pick)
        self.w.edit_contact(cid, **{name: value or None})

    @precondition(lambda self: self.crm_alive)
    @rule(pick=PICK)
    def crm_delete(self, pick: int) -> None:
        cid = self._pick_crm(pick)
        self.w.delete(models.Contact, cid)
        self.crm_alive.discard(cid)

    @precondition(lambda self: self.crm_alive)
    @rule(pick=PICK, owner=st.sampled_from(USERS))
    def crm_reassign(self, pick: int, owner: str) -> None:
        cid = self._pick_crm(pick)
        self.w.edit_contact(cid, owner_id=self.w.ids[owner])

    @precondition(lambda self: self.crm_alive)
    @rule(pick=PICK, state=st.sampled_from([0, 1]))
    def crm_state(self, pick: int, state: int) -> None:
        cid = self._pick_crm(pick)
        self.w.edit_contact(cid, statecode=state)

    @rule(user=st.sampled_from(USERS), scope=st.sampled_from(["user", "organisation"]))
    def change_filter(self, user: str, scope: str) -> None:
        with self.w.store.transaction() as s:
            s.get(models.SystemUser, self.w.ids[user]).local_filter_scope = scope

    # -- the mailbox side

    def _items(self, user: str) -> list[str]:
        return list(self.w.mailboxes[user].items["contact"])  # in creation order

    @rule(user=st.sampled_from(USERS), tracked=st.booleans(), last=st.sampled_from(["Tom", "Uma"]))
    def mailbox_create(self, user: str, tracked: bool, last: str) -> None:
        item = self.w.mailboxes[user].user_create("contact", {"lastname": last}, TRACKED if tracked else ())
        if not tracked:
            self.untracked[(user, item)] = self.w.mailboxes[user].values("contact")[item]

    @rule(pick=PICK, user=st.sampled_from(USERS), name=st.sampled_from(FIELDS_EDITED), value=VALUES)
    def mailbox_edit(self, pick: int, user: str, name: str, value: str) -> None:
        items = [i for i in self._items(user) if (user, i) not in self.untracked]
        if items:
            self.w.mailboxes[user].user_update("contact", items[pick % len(items)], {name: value or None})

    @rule(pick=PICK, user=st.sampled_from(USERS))
    def mailbox_delete(self, pick: int, user: str) -> None:
        items = self._items(user)
        if items:
            item = items[pick % len(items)]
            self.w.mailboxes[user].user_delete("contact", item)
            self.untracked.pop((user, item), None)

    @rule(pick=PICK, user=st.sampled_from(USERS))
    def mailbox_move(self, pick: int, user: str) -> None:
        items = [i for i in self._items(user) if (user, i) not in self.untracked]
        if items and hasattr(self.w.mailboxes[user], "move"):
            self.w.mailboxes[user].move("contact", items[pick % len(items)])

    @rule(pick=PICK, user=st.sampled_from(USERS))
    def mailbox_touch(self, pick: int, user: str) -> None:
        items = self._items(user)
        if items:
            self.w.mailboxes[user].touch("contact", items[pick % len(items)])

    @rule(user=st.sampled_from(USERS), op=st.sampled_from(["create", "update", "delete"]))
    def failing_write(self, user: str, op: str) -> None:
        self.w.mailboxes[user].fail_next(op, RuntimeError(f"{op} refused (test)"))

    @rule(user=st.sampled_from(USERS))
    def forget_token(self, user: str) -> None:
        self.w.mailboxes[user].forget_tokens()

    # -- syncing

    @precondition(lambda self: self.crash_allowed)
    @rule(user=st.sampled_from(USERS), k=st.integers(1, 4))
    def sync_crashing(self, user: str, k: int) -> None:
        steps: list[str] = []

        def crash(at: str) -> None:
            steps.append(at)
            if len(steps) == k:
                raise Interrupted(at)

        try:
            self.w.sync(user, entities=("contact",), crash=crash)
        except Interrupted:
            pass

    @rule(user=st.sampled_from(USERS))
    def sync(self, user: str) -> None:
        self.w.mailboxes[user].failures.clear()
        for _ in range(3):  # a clean sync; an item that failed before is retried by the next one
            report = self.w.sync(user, entities=("contact",), force=True)["contact"]
            assert report.error is None
            if not report.failed:
                break
        assert not report.failed
        self._check(user)

    def _check(self, user: str) -> None:
        box = self.w.mailboxes[user]
        before = box.writes()
        crm_before = self._crm_versions()
        again = self.w.sync(user, entities=("contact",))["contact"]
        assert again.writes == 0, again.actions
        assert box.writes() == before and self._crm_versions() == crm_before
        links = [link for link in self.w.links(user) if link.state == "linked"]
        assert len({link.crm_id for link in links}) == len(links)
        assert len({link.mailbox_id for link in links}) == len(links)
        values = box.values("contact")
        crm_ids = [s.crm_id for s in box.items["contact"].values() if s.crm_id]
        assert len(crm_ids) == len(set(crm_ids)), "two items carry the same CRM id"
        from abook.sync.crm import crm_values_txn

        with self.w.store.transaction() as s:
            crm = crm_values_txn(s, "contact", [link.crm_id for link in links], self.w.now)
        for link in links:
            assert link.mailbox_id in values and link.crm_id in crm
            assert {f: crm[link.crm_id][f] for f in TWO_WAY} == {f: values[link.mailbox_id][f] for f in TWO_WAY}
        for (owner, item), kept in self.untracked.items():
            if owner == user:
                assert box.values("contact").get(item) == kept, "an untracked item was changed or deleted"

    def _crm_versions(self) -> list[tuple[str, str]]:
        with self.w.store.transaction() as s:
            return sorted((c.id, c.modifiedon.isoformat()) for c in s.query(models.Contact))

    @invariant()
    def crm_contacts_are_never_deleted_by_a_sync(self) -> None:
        with self.w.store.transaction() as s:
            existing = {c for (c,) in s.query(models.Contact.id)}
        assert self.crm_alive <= existing
        self.crm_alive |= existing  # tracked items become contacts
