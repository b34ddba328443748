"""The CRM side of sync on both databases (SQLite and the private PostgreSQL): scope queries, the LDAP
part of the filter, versions, writes and quiescence."""

from __future__ import annotations

from datetime import timedelta

from abook.directory.local_filter import local_filter_ids_txn
from abook.store import Store, models
from abook.sync.engine import SyncEngine
from abook.threads import SyncRunner
from tests.unit.sync.world import World

TRACKED = ("Tracked to CRM",)


def test_sync_on_each_database(store: Store) -> None:
    w = World(store)
    w.engine = SyncEngine(store, SyncRunner(), w.policies, clock=lambda: w.now, ldap_ids=local_filter_ids_txn)
    berlin = w.contact(lastname="Berliner", address1_city="Berlin", telephone1="+49 30 1")
    w.contact(lastname="Parisian", address1_city="Paris")
    with store.transaction() as s:
        s.get(models.SystemUser, w.ids["paul"]).local_filter_ldap = "(|(l=Berlin)(l=Hamburg))"
    meeting = w.appointment(attendees=("laura",), start=w.now + timedelta(days=1))
    task = w.task(subject="Send offer")
    w.mailboxes["paul"].user_create("contact", {"lastname": "Tracked"}, TRACKED)
    w.sync("paul")
    box = w.mailboxes["paul"]
    assert sorted(v["lastname"] for v in box.values("contact").values()) == ["Berliner", "Tracked"]
    assert len(box.items["appointment"]) == 1 and len(box.items["task"]) == 1
    box.calls.clear()
    assert all(r.writes == 0 for r in w.sync("paul").values()) and box.writes() == []
    item = next(i for i, v in box.values("contact").items() if v["lastname"] == "Berliner")
    box.user_update("contact", item, {"jobtitle": "Chief"})
    w.edit_contact(berlin, telephone1="+49 30 2")
    w.edit_activity(task, subject="Send the offer")
    w.sync("paul")
    assert w.crm_contact(berlin).jobtitle == "Chief" and box.values("contact")[item]["telephone1"] == "+49 30 2"
    assert [v["subject"] for v in box.values("task").values()] == ["Send the offer"]
    assert w.activity(meeting) is not None
    with store.transaction() as s:
        assert s.query(models.Contact).filter_by(lastname="Tracked").one().owner_id == w.ids["paul"]
