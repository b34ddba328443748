"""The IPimStore contract (vdirsyncer's StorageTests), run on every backend: the in-memory mailbox, abook's
CardDAV/CalDAV client against a real Radicale, and the EWS backend replayed through exchangelib."""

from __future__ import annotations

from typing import Any, Iterator

import pytest
from abook.mailbox.errors import CursorInvalid
from abook.mailbox.pim.interfaces import IPimStore, ItemGone, StaleItem
from abook.mailbox.pim.memory import MemoryMailbox
from abook.mailbox.pim.schema import normalise

CONTACT = {"firstname": "Ann", "lastname": "Lee", "fullname": "Ann Lee", "emailaddress1": "ann@example.org",
           "emailaddress3": "third@example.org", "telephone1": "+49 30 1234", "mobilephone": "+49 171 1",
           "company": "+49 30 9", "telephone3": "+1 0", "jobtitle": "Chief", "department": "Sales",
           "company_name": "Acme, Inc.", "address1_street": "1 Main St\nFloor 2", "address1_city": "Berlin",
           "address1_postalcode": "10115", "address1_country": "Germany", "description": "two\nlines; a, b",
           "birthdate": "1980-02-29", "anniversary": "2010-06-01", "nickname": "Annie", "assistantname": "Bob",
           "spousesname": "Sam", "childrensnames": "Kim; Lee", "websiteurl": "https://example.org/ann"}
MEETING = {"when": "2026-03-29T00:30:00Z/2026-03-29T02:00:00Z", "timezone": "Europe/Berlin", "subject": "Review",
           "location": "Room 1", "description": "agenda", "prioritycode": "high", "organizer": "paul@example.com",
           "attendees": "optional:guest@elsewhere.example;required:laura@example.com", "showas": "busy",
           "uid": "meeting-1@abook"}
ALLDAY = {"when": "2026-03-29/2026-03-31", "timezone": "Pacific/Chatham", "subject": "Fair", "showas": "free",
          "uid": "fair-1@abook"}
TASK = {"subject": "Send offer", "startdate": "2026-07-01", "duedate": "2026-07-03", "percentcomplete": "40",
        "status": "open", "prioritycode": "low", "description": "by mail"}
TIMED_TASK = {"subject": "Call", "duedate": "2026-07-03T15:30:00Z", "completed": "2026-07-02T09:00:00Z",
              "status": "completed", "prioritycode": "normal"}
SAMPLES = [("contact", CONTACT), ("appointment", MEETING), ("appointment", ALLDAY), ("task", TASK),
           ("task", TIMED_TASK)]
SAMPLE_IDS = ["contact", "meeting", "allday", "task", "timed-task"]


BACKENDS = ("memory", "dav", "ews", "graph")
ENTITIES = frozenset({"contact", "appointment", "task"})
#: what a backend keeps when it is not every entity (a test of another entity is not generated for it,
#: rather than skipped at run time); every backend holds all three now
HOLDS: dict[str, frozenset[str]] = {}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test runs on every backend that holds the entities it uses (its ``holds`` marker, or its
    ``entity`` parameter)."""
    if "pim" not in metafunc.fixturenames:
        return
    if "entity" in metafunc.fixturenames:
        cases = [pytest.param(b, e, v, id=f"{b}-{name}") for b in BACKENDS
                 for (e, v), name in zip(SAMPLES, SAMPLE_IDS) if e in HOLDS.get(b, ENTITIES)]
        metafunc.parametrize(("pim", "entity", "values"), cases, indirect=["pim"])
        return
    marker = metafunc.definition.get_closest_marker("holds")
    needed = set(marker.args) if marker else set()
    metafunc.parametrize("pim", [b for b in BACKENDS if needed <= HOLDS.get(b, ENTITIES)], indirect=True)


@pytest.fixture
def pim(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "memory":
        yield MemoryMailbox()
        return
    if request.param == "graph":
        from tests.graph.pim_harness import GraphPimHarness

        box: Any = GraphPimHarness(request.getfixturevalue("graph_server"))
    elif request.param == "dav":
        from tests.contract.pim_harness import RadicaleMailbox

        box = RadicaleMailbox(request.getfixturevalue("radicale_server"))
    else:
        from tests.ews.pim_harness import EwsPimHarness

        box = EwsPimHarness(request.getfixturevalue("ews_pim_responder"))
    yield box
    box.destroy()


def _ids(pim: Any, entity: str, token: str | None = None) -> dict[str, str]:
    return {x.id: x.etag for x in pim.changes_blocking(entity, token).changed}


def test_it_provides_the_interface(pim: Any) -> None:
    assert IPimStore.providedBy(pim)


def test_create_then_get_gives_exactly_the_projection(pim: Any, entity: str, values: dict) -> None:
    listed = pim.create_blocking(entity, values, "crm-1")
    (item,) = pim.get_blocking(entity, [listed.id])
    assert item.values == pim.project(entity, values)
    assert (item.id, item.etag, item.crm_id) == (listed.id, listed.etag, "crm-1")
    if entity == "contact":  # every backend keeps every contact field given
        assert {k: v for k, v in normalise(entity, values).items() if v is not None} == \
            {k: v for k, v in item.values.items() if k in values}
    assert _ids(pim, entity) == {listed.id: listed.etag}


def test_changes_since_a_token_list_updates_and_deletes(pim: Any) -> None:
    a = pim.create_blocking("contact", {"lastname": "A"}, "crm-a")
    b = pim.create_blocking("contact", {"lastname": "B"}, "crm-b")
    token = pim.changes_blocking("contact", None).token
    assert pim.changes_blocking("contact", token).changed == ()
    a2 = pim.update_blocking("contact", a.id, a.etag, {"jobtitle": "Chief"})
    assert a2.etag != a.etag
    pim.delete_blocking("contact", b.id, b.etag)
    changes = pim.changes_blocking("contact", token)
    assert {x.id: x.etag for x in changes.changed} == {a.id: a2.etag} and set(changes.deleted) == {b.id}
    assert not changes.complete
    assert pim.get_blocking("contact", [b.id]) == []


def test_update_sets_the_given_fields_clears_none_and_keeps_the_rest(pim: Any) -> None:
    a = pim.create_blocking("contact", CONTACT, "crm-a")
    pim.update_blocking("contact", a.id, a.etag, {"jobtitle": "CEO", "nickname": None})
    (item,) = pim.get_blocking("contact", [a.id])
    assert item.values == pim.project("contact", {**CONTACT, "jobtitle": "CEO", "nickname": None})
    assert item.crm_id == "crm-a"


@pytest.mark.holds("task")
def test_update_needs_the_current_etag_and_an_existing_item(pim: Any) -> None:
    a = pim.create_blocking("task", TASK, "crm-a")
    pim.update_blocking("task", a.id, a.etag, {"subject": "first"})
    with pytest.raises(StaleItem):
        pim.update_blocking("task", a.id, a.etag, {"subject": "second"})
    (item,) = pim.get_blocking("task", [a.id])
    pim.delete_blocking("task", a.id, item.etag)
    with pytest.raises(ItemGone):
        pim.update_blocking("task", a.id, item.etag, {"subject": "third"})
    pim.delete_blocking("task", a.id, item.etag)  # already gone: fine


@pytest.mark.holds("appointment", "contact")
def test_the_crm_id_finds_the_item_and_can_be_written_later(pim: Any) -> None:
    a = pim.create_blocking("appointment", MEETING, "crm-a")
    assert pim.find_blocking("appointment", "crm-a") == pim.changes_blocking("appointment", None).changed[0]
    assert pim.find_blocking("appointment", "crm-nobody") is None
    b = pim.create_blocking("contact", {"lastname": "B"}, "")
    pim.update_blocking("contact", b.id, b.etag, {}, "crm-b")
    assert pim.get_blocking("contact", [b.id])[0].crm_id == "crm-b"
    assert a


def test_a_forgotten_token_is_refused(pim: Any) -> None:
    pim.create_blocking("contact", {"lastname": "A"}, "crm-a")
    token = pim.changes_blocking("contact", None).token
    pim.forget_tokens()
    with pytest.raises(CursorInvalid):
        pim.changes_blocking("contact", token)


@pytest.mark.holds("task")
def test_categories_set_by_the_user_survive_abooks_updates(pim: Any) -> None:
    a = pim.create_blocking("task", TASK, "crm-a")
    pim.user_update("task", a.id, {}, categories=("Tracked to CRM", "Red"))
    (item,) = pim.get_blocking("task", [a.id])
    assert set(item.categories) == {"Tracked to CRM", "Red"}
    pim.update_blocking("task", a.id, item.etag, {"subject": "renamed"})
    (item,) = pim.get_blocking("task", [a.id])
    assert set(item.categories) == {"Tracked to CRM", "Red"} and item.values["subject"] == "renamed"


def _tricky_values(n: int, seed: int = 16) -> list[dict]:
    """Deterministic awkward values: vCard separators and escapes, line endings, non-ASCII, empty strings.
    (Hypothesis' @given cannot wrap a test that pytest-twisted also wraps per parameter.)"""
    import random

    rnd = random.Random(seed)
    alphabet = "ab ;,:\\\"\r\n\t<>\u00e9\u4e2d\U0001f600"
    text = lambda k: "".join(rnd.choice(alphabet) for _ in range(rnd.randint(0, k)))  # noqa: E731
    out = []
    for _ in range(n):
        v = {"lastname": text(10) or "x", "jobtitle": text(10), "description": text(20), "nickname": text(5),
             "emailaddress2": rnd.choice(["", "x@example.org", "Y.Z@example.org"]),
             "telephone1": rnd.choice(["", "+1 555", "0049-30 / 12"]),
             "birthdate": rnd.choice([None, "1900-01-01", "1980-02-29", "2026-12-31"])}
        out.append({k: val for k, val in v.items() if rnd.random() < 0.8})
    return out


def test_round_trip_is_a_fixed_point(pim: Any) -> None:
    for values in _tricky_values(20):
        once = pim.project("contact", values)
        assert pim.project("contact", once) == once, values
        listed = pim.create_blocking("contact", values, "crm-x")
        (item,) = pim.get_blocking("contact", [listed.id])
        assert item.values == once, values
        pim.delete_blocking("contact", listed.id, listed.etag)


def test_clearing_one_of_several_indexed_fields_keeps_the_others(pim: Any) -> None:
    a = pim.create_blocking("contact", {"lastname": "Lee", "telephone1": "+1 1", "mobilephone": "+1 2",
                                        "emailaddress1": "a@example.org", "emailaddress2": "b@example.org"}, "crm-a")
    pim.update_blocking("contact", a.id, a.etag, {"telephone1": None, "emailaddress1": None})
    (item,) = pim.get_blocking("contact", [a.id])
    assert (item.values["telephone1"], item.values["mobilephone"]) == (None, "+1 2")
    assert (item.values["emailaddress1"], item.values["emailaddress2"]) == (None, "b@example.org")
