"""Replay: the Graph contacts backend (GraphPimStore) against the Graph responder, for what the contract
suite tests on other entities (the CRM id, user categories, stale change keys) and Graph's own parts."""

from __future__ import annotations

import pytest

from abook.mailbox.errors import CursorInvalid
from abook.mailbox.pim.graph import CRM_ID, MAPI
from abook.mailbox.pim.interfaces import ItemGone, StaleItem
from tests.fixtures.graph import GraphServer
from tests.graph.pim_harness import GraphPimHarness


@pytest.fixture
def pim(graph_server: GraphServer) -> GraphPimHarness:
    return GraphPimHarness(graph_server)


def test_the_crm_id_finds_the_contact_and_can_be_written_later(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("contact", {"lastname": "A"}, "crm-a")
    assert pim.find_blocking("contact", "crm-a") == pim.changes_blocking("contact", None).changed[0]
    assert pim.find_blocking("contact", "crm-nobody") is None
    b = pim.create_blocking("contact", {"lastname": "B"}, "")
    pim.update_blocking("contact", b.id, b.etag, {}, "crm-b")
    assert pim.get_blocking("contact", [b.id])[0].crm_id == "crm-b"
    # the EWS backend's property: a mailbox moved from EWS to Graph keeps its links
    from abook.mailbox.pim.ews import PROPERTY_NAME, PROPERTY_SET

    assert CRM_ID == f"String {{{PROPERTY_SET}}} Name {PROPERTY_NAME}"
    assert pim.responder.store.messages[a.id].extended[CRM_ID.lower()] == "crm-a"


def test_user_categories_survive_and_a_stale_change_key_is_refused(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("contact", {"lastname": "Lee", "jobtitle": "Chief"}, "crm-a")
    pim.user_update("contact", a.id, {}, categories=("Tracked to CRM", "Red"))
    (item,) = pim.get_blocking("contact", [a.id])
    pim.update_blocking("contact", a.id, item.etag, {"jobtitle": "CEO"})
    (after,) = pim.get_blocking("contact", [a.id])
    assert set(after.categories) == {"Tracked to CRM", "Red"} and after.values["jobtitle"] == "CEO"
    with pytest.raises(StaleItem):
        pim.update_blocking("contact", a.id, item.etag, {"jobtitle": "again"})
    pim.delete_blocking("contact", a.id, after.etag)
    with pytest.raises(ItemGone):
        pim.update_blocking("contact", a.id, after.etag, {"jobtitle": "third"})
    pim.delete_blocking("contact", a.id, after.etag)  # already gone: fine


def test_phones_and_addresses_are_outlooks_slots_and_reads_are_batched(pim: GraphPimHarness) -> None:
    a = pim.create_blocking("contact", {"lastname": "Lee", "telephone1": "+1 1", "emailaddress2": "b@example.org",
                                        "address1_city": "Berlin", "address1_street": "1 Main St"}, "crm-a")
    stored = pim.responder.store.messages[a.id]
    assert stored.extended == {MAPI["telephone1"].lower(): "+1 1", MAPI["emailaddress2"].lower(): "b@example.org",
                               CRM_ID.lower(): "crm-a"}
    pim.update_blocking("contact", a.id, a.etag, {"address1_city": "Hamburg"})  # the street stays
    assert stored.data["businessAddress"] == {"street": "1 Main St", "city": "Hamburg", "state": "", "postalCode": "",
                                              "countryOrRegion": ""}
    b = pim.create_blocking("contact", {"lastname": "B"}, "crm-b")
    mark = len(pim.responder.requests)
    items = pim.get_blocking("contact", [a.id, "gone-id", b.id])
    assert [i.id for i in items] == [a.id, b.id]
    assert [r for r in pim.responder.since(mark) if not r.endswith("/token")][0] == "POST /$batch"


def test_a_forgotten_delta_state_is_cursor_invalid_and_pages_are_followed(pim: GraphPimHarness) -> None:
    for n in range(12):  # more than a page (the responder's default page holds 10)
        pim.create_blocking("contact", {"lastname": f"L{n}"}, f"crm-{n}")
    first = pim.changes_blocking("contact", None)
    assert len(first.changed) == 12 and first.complete and "$deltatoken" in (first.token or "")
    pim.responder.expire_delta(pim.address)
    with pytest.raises(CursorInvalid):
        pim.changes_blocking("contact", first.token)


def test_a_change_and_a_removal_of_one_contact_in_one_round_are_settled_by_looking(pim: GraphPimHarness) -> None:
    """Graph promises no order within a round: a removal may come before a change of the same id (or a
    stale removal beside a live contact). The contact's presence decides, and a repeated entry counts once."""
    kept = pim.create_blocking("contact", {"lastname": "Kept"}, "crm-k")
    gone = pim.create_blocking("contact", {"lastname": "Gone"}, "crm-g")
    token = pim.changes_blocking("contact", None).token
    kept2 = pim.update_blocking("contact", kept.id, kept.etag, {"jobtitle": "Chief"})
    pim.delete_blocking("contact", gone.id, gone.etag)
    with pim.responder.lock:  # out of order: "kept" removed, then changed; "gone" changed after its removal
        pim.responder.store.inject_next = [{"id": kept.id, "@removed": {"reason": "deleted"}},
                                           {"id": gone.id, "@odata.etag": gone.etag}]
        pim.responder.store.repeat_next = True
    changes = pim.changes_blocking("contact", token)
    assert [(x.id, x.etag) for x in changes.changed] == [(kept.id, kept2.etag)]
    assert list(changes.deleted) == [gone.id]
