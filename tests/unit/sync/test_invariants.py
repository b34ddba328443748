"""docs/sync.md section 6, one named test per invariant (12, the delete table, is test_delete_table.py; the
random mutations of both sides are test_machine.py), against the in-memory mailbox."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abook.mailbox.errors import Unavailable
from abook.mailbox.pim.memory import MemoryMailbox
from abook.mailbox.pim.schema import FIELDS, normalise
from abook.store import models
from abook.store.enums import ActivityState
from abook.store.sync_conflicts import conflicts_txn, issues_txn
from abook.store.sync_links import sync_state_txn
from abook.sync.engine import Interrupted
from abook.sync.model import Policy
from tests.unit.sync.conftest import new_world
from tests.unit.sync.world import World

TRACKED = ("Tracked to CRM",)


def _contact_item(w: World, user: str = "paul") -> str:
    (item_id,) = w.mailboxes[user].items["contact"]
    return item_id


def _crm_state(w: World) -> list[tuple]:
    with w.store.transaction() as s:
        contacts = sorted((c.id, c.modifiedon.isoformat(), c.jobtitle, c.firstname) for c in s.query(models.Contact))
        acts = sorted((a.id, a.modifiedon.isoformat(), a.subject) for a in s.query(models.Activity))
    return contacts + acts


def _mailbox_state(w: World) -> list[tuple]:
    return sorted((e, i, s.etag, tuple(sorted(s.values.items()))) for name in w.mailboxes
                  for e, items in w.mailboxes[name].items.items() for i, s in items.items())


def test_invariant_01_quiescence_a_sync_after_a_sync_writes_nothing(world: World) -> None:
    world.contact(emailaddress1="ann@example.org")
    world.appointment(attendees=("ext@elsewhere.example",))
    world.task()
    world.sync()
    crm, mailbox = _crm_state(world), _mailbox_state(world)
    world.mailboxes["paul"].calls.clear()
    reports = world.sync()
    assert all(r.writes == 0 for r in reports.values())
    assert world.mailboxes["paul"].writes() == []
    assert (_crm_state(world), _mailbox_state(world)) == (crm, mailbox)


def test_invariant_02_idempotence_sync_sync_equals_sync(world: World) -> None:
    cid = world.contact()
    world.sync()
    world.edit_contact(cid, jobtitle="Chief")
    world.mailboxes["paul"].user_update("contact", _contact_item(world), {"department": "Sales"})
    world.sync()
    once = (_crm_state(world), _mailbox_state(world), [(l.crm_hash, l.mailbox_hash) for l in world.links()])
    world.sync()
    assert (_crm_state(world), _mailbox_state(world), [(l.crm_hash, l.mailbox_hash) for l in world.links()]) == once


def test_invariant_03_convergence_two_way_fields_equal_after_a_sync(world: World) -> None:
    cid = world.contact(telephone1="+1 555 0100")
    world.sync()
    item = _contact_item(world)
    world.edit_contact(cid, jobtitle="Chief", description="From the CRM")
    world.mailboxes["paul"].user_update("contact", item, {"mobilephone": "+1 555 0199", "nickname": "Annie"})
    world.sync()
    from abook.sync.crm import crm_values_txn

    with world.store.transaction() as s:
        crm_values = crm_values_txn(s, "contact", [cid], world.now)[cid]
    mailbox_values = world.mailboxes["paul"].values("contact")[item]
    two_way = [f.name for f in FIELDS["contact"] if f.direction == "both"]
    assert {f: crm_values[f] for f in two_way} == {f: mailbox_values[f] for f in two_way}
    assert crm_values["mobilephone"] == "+1 555 0199" and mailbox_values["jobtitle"] == "Chief"


def test_invariant_04_no_echo_one_edit_one_write(world: World) -> None:
    cid = world.contact()
    world.sync()
    world.mailboxes["paul"].user_update("contact", _contact_item(world), {"jobtitle": "Chief"})
    before = world.crm_contact(cid).modifiedon
    world.mailboxes["paul"].calls.clear()
    first = world.sync(entities=("contact",))["contact"]
    assert first.counts == {"update": 1} and world.mailboxes["paul"].writes() == []  # the CRM got it, not the mailbox
    assert world.crm_contact(cid).modifiedon != before
    written = world.crm_contact(cid).modifiedon
    for _ in range(3):
        assert world.sync(entities=("contact",))["contact"].writes == 0
    assert world.mailboxes["paul"].writes() == [] and world.crm_contact(cid).modifiedon == written


def test_invariant_05_metadata_only_changes_are_not_changes(world: World) -> None:
    cid = world.contact()
    world.sync()
    item = _contact_item(world)
    world.mailboxes["paul"].touch("contact", item)  # new change key, same content
    world.edit_contact(cid)  # new modifiedon, same fields
    world.mailboxes["paul"].calls.clear()
    report = world.sync(entities=("contact",))["contact"]
    assert report.writes == 0 and report.counts == {"refresh": 1}
    assert world.mailboxes["paul"].writes() == []
    assert world.sync(entities=("contact",))["contact"].counts == {}


_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({}, optional={
    "description": st.text(st.sampled_from("ab <>\r\n\t\xa0"), max_size=20),
    "telephone1": _text, "emailaddress2": _text, "birthdate": st.dates().map(lambda d: d.isoformat()),
    "duedate": st.one_of(st.dates().map(lambda d: d.isoformat()),
                         st.datetimes(timezones=st.just(timezone.utc)).map(lambda t: t.strftime("%Y-%m-%dT%H:%M:%SZ"))),
    "percentcomplete": st.integers(0, 100).map(str),
}))
def test_invariant_06_round_trip_fixed_point_of_every_mapped_kind(values: dict) -> None:
    for entity in FIELDS:
        once = normalise(entity, values)
        assert normalise(entity, once) == once
        mailbox = MemoryMailbox(date_only_tasks=True)
        assert mailbox.project(entity, mailbox.project(entity, once)) == mailbox.project(entity, once)


def test_invariant_06_crm_mapping_is_a_fixed_point(world: World) -> None:
    from abook.sync.crm import crm_values_txn, update_crm_txn

    cid = world.contact(description="line 1  \r\nline 2\n\n", address1_line1="1 Main St", address1_line2="Floor 2",
                        birthdate=datetime(1980, 2, 29).date())
    tid = world.task(scheduledend=datetime(2026, 7, 1, tzinfo=timezone.utc), alldayevent=True)
    tid2 = world.task(scheduledend=datetime(2026, 7, 1, 15, 30, tzinfo=timezone.utc))
    for entity, rid in (("contact", cid), ("task", tid), ("task", tid2)):
        with world.store.transaction() as s:
            first = crm_values_txn(s, entity, [rid], world.now)[rid]
            writable = {k: v for k, v in first.items() if k not in ("fullname", "company_name")}
            _, again = update_crm_txn(s, entity, rid, writable, world.now)
        assert again == first
    assert first["duedate"] == "2026-07-01T15:30:00Z"
    with world.store.transaction() as s:
        assert crm_values_txn(s, "task", [tid], world.now)[tid]["duedate"] == "2026-07-01"
        assert crm_values_txn(s, "contact", [cid], world.now)[cid]["description"] == "line 1\nline 2"


@pytest.mark.parametrize("policy", ["crm", "mailbox"])
def test_invariant_07_conflict_policy_applies_and_the_loser_is_recorded(tmp_path, policy: str) -> None:

    w = new_world(tmp_path, policies={e: Policy(e, conflict=policy) for e in ("contact", "appointment", "task")})
    store = w.store
    cid = w.contact()
    w.sync()
    w.edit_contact(cid, jobtitle="CRM title")
    w.mailboxes["paul"].user_update("contact", _contact_item(w), {"jobtitle": "Mailbox title"})
    w.sync()
    winner = "CRM title" if policy == "crm" else "Mailbox title"
    assert w.crm_contact(cid).jobtitle == winner
    assert w.mailboxes["paul"].values("contact")[_contact_item(w)]["jobtitle"] == winner
    with store.transaction() as s:
        (conflict,) = conflicts_txn(s, open_only=False)
    assert conflict.winner == policy and conflict.fields == {"jobtitle": {"crm": "CRM title", "mailbox": "Mailbox title"}}
    store.dispose()


def test_invariant_07_manual_conflict_writes_nothing_until_resolved(tmp_path) -> None:
    from abook.store.sync_conflicts import resolve_conflict_txn

    w = new_world(tmp_path, policies={e: Policy(e, conflict="manual") for e in ("contact", "appointment", "task")})
    store = w.store
    cid = w.contact()
    w.sync()
    w.edit_contact(cid, jobtitle="CRM title")
    w.mailboxes["paul"].user_update("contact", _contact_item(w), {"jobtitle": "Mailbox title"})
    w.mailboxes["paul"].calls.clear()
    w.sync()
    w.sync()  # found again: still one open conflict, still nothing written
    assert w.mailboxes["paul"].writes() == [] and w.crm_contact(cid).jobtitle == "CRM title"
    with store.transaction() as s:
        (conflict,) = conflicts_txn(s)
        resolve_conflict_txn(s, conflict.id, "mailbox")
    w.sync()
    assert w.crm_contact(cid).jobtitle == "Mailbox title"
    with store.transaction() as s:
        assert conflicts_txn(s) == []
    store.dispose()


def test_invariant_08_modify_beats_delete(world: World) -> None:
    cid = world.contact()
    world.sync()
    world.mailboxes["paul"].user_delete("contact", _contact_item(world))
    world.edit_contact(cid, jobtitle="Changed meanwhile")
    world.sync()
    (values,) = world.mailboxes["paul"].values("contact").values()
    assert values["jobtitle"] == "Changed meanwhile"


def test_invariant_09_delete_needs_evidence(world: World) -> None:
    """Laura's copy of Paul's contact: deleted in the CRM, but Laura changed her copy: it is not deleted."""
    with world.store.transaction() as s:
        s.get(models.SystemUser, world.ids["laura"]).local_filter_scope = "organisation"
    cid = world.contact(owner="paul")
    world.sync("laura")
    item = _contact_item(world, "laura")
    world.mailboxes["laura"].user_update("contact", item, {"jobtitle": "Laura's note"})
    world.delete(models.Contact, cid)
    world.sync("laura")
    assert item in world.mailboxes["laura"].items["contact"]
    assert world.links("laura") == []


def test_invariant_10_mass_delete_guard(world: World) -> None:
    cids = [world.contact(lastname=f"L{i}") for i in range(3)]
    world.sync()
    for item in list(world.mailboxes["paul"].items["contact"]):
        world.mailboxes["paul"].user_delete("contact", item)  # the mailbox suddenly lists nothing
    report = world.sync(entities=("contact",))["contact"]
    assert report.error and "lists no contact while 3 are linked" in report.error
    assert len(world.links()) == 3 and all(world.crm_contact(c) for c in cids)
    with world.store.transaction() as s:
        assert "lists no contact" in sync_state_txn(s, world.ids["paul"], "contact").last_error
    forced = world.sync(entities=("contact",), force=True)["contact"]
    assert forced.error is None and len(world.links()) == 3 and all(l.state == "tombstone" for l in world.links())


def test_invariant_11_leaving_the_filter_never_deletes_the_crm_record(world: World) -> None:
    cid = world.contact(owner="paul")
    world.sync("paul")
    world.sync("laura")
    assert len(world.mailboxes["paul"].items["contact"]) == 1 and not world.mailboxes["laura"].items["contact"]
    world.edit_contact(cid, owner_id=world.ids["laura"])  # reassigned from Paul to Laura
    world.sync("paul")
    world.sync("laura")
    assert not world.mailboxes["paul"].items["contact"] and len(world.mailboxes["laura"].items["contact"]) == 1
    assert world.crm_contact(cid) is not None
    world.edit_contact(cid, statecode=1)  # deactivated: leaves Laura's filter too
    world.sync("laura")
    assert not world.mailboxes["laura"].items["contact"] and world.crm_contact(cid) is not None


def test_invariant_13_one_link_per_record_per_mailbox(world: World) -> None:
    cid = world.contact()
    world.sync()
    item = _contact_item(world)
    # a second item carrying the same CRM id (a copy made by a client) does not get a second link
    world.mailboxes["paul"].user_create("contact", {"lastname": "Copy"}, crm_id=cid)
    world.mailboxes["paul"].forget_tokens()
    world.sync()
    (link,) = world.links()
    assert link.mailbox_id == item and len(world.mailboxes["paul"].items["contact"]) == 2


@pytest.mark.parametrize("step", ["create_mailbox:pending", "create_mailbox:created"])
def test_invariant_14_crash_safe_create(world: World, step: str) -> None:
    world.contact()

    def crash(at: str) -> None:
        if at == step:
            raise Interrupted(at)

    with pytest.raises(Interrupted):
        world.sync(entities=("contact",), crash=crash)
    world.mailboxes["paul"].calls.clear()
    world.sync(entities=("contact",))
    assert len(world.mailboxes["paul"].items["contact"]) == 1
    (link,) = world.links()
    assert link.state == "linked" and link.mailbox_id == _contact_item(world)
    assert ("find" in world.mailboxes["paul"].calls) and world.mailboxes["paul"].writes() == (
        [] if step == "create_mailbox:created" else ["create"])


def _scenario(w: World) -> None:
    for i in range(3):
        w.contact(lastname=f"C{i}")
    w.task(subject="T")
    w.appointment(attendees=("x@elsewhere.example",))


def _outcome(w: World) -> tuple:
    """Both sides and the links, without ids (two worlds give their records different ids)."""
    mailbox = {e: sorted(tuple(sorted((k, v) for k, v in values.items() if k != "uid"))
                         for values in w.mailboxes["paul"].values(e).values()) for e in ("contact", "task", "appointment")}
    with w.store.transaction() as s:
        crm = (sorted(c.lastname for c in s.query(models.Contact)), sorted(a.subject for a in s.query(models.Activity)))
    links = sorted((e, l.state) for e in ("contact", "task", "appointment") for l in w.links(entity=e))
    return mailbox, crm, links


@pytest.mark.parametrize("k", range(1, 6))
def test_invariant_15_interrupted_at_step_k_then_resumed_equals_uninterrupted(tmp_path, k: int) -> None:

    worlds = []
    for name in ("reference", "interrupted"):
        worlds.append(new_world(tmp_path, name))
    reference, world = worlds
    for w in worlds:
        _scenario(w)
    reference.sync()
    steps = []

    def crash(at: str) -> None:
        steps.append(at)
        if len(steps) == k:
            raise Interrupted(at)

    with pytest.raises(Interrupted):
        for e in ("contact", "task", "appointment"):
            world.sync(entities=(e,), crash=crash)
    world.sync()
    assert _outcome(world) == _outcome(reference)
    assert len(world.mailboxes["paul"].writes()) == len(reference.mailboxes["paul"].writes())  # nothing twice
    for w in worlds:
        w.store.dispose()


def test_invariant_16_replaying_a_batch_changes_nothing_more(world: World) -> None:
    cid = world.contact()
    world.sync()
    item = _contact_item(world)
    with world.store.transaction() as s:
        token = sync_state_txn(s, world.ids["paul"], "contact").token
    world.mailboxes["paul"].user_update("contact", item, {"jobtitle": "Once"})
    world.sync()
    written = world.crm_contact(cid).modifiedon
    from abook.store.sync_links import save_token_txn

    with world.store.transaction() as s:  # as if the token had not been saved: the same batch comes again
        save_token_txn(s, world.ids["paul"], "contact", token)
    world.mailboxes["paul"].calls.clear()
    report = world.sync(entities=("contact",))["contact"]
    assert report.writes == 0 and world.crm_contact(cid).modifiedon == written
    assert world.mailboxes["paul"].writes() == []


def test_invariant_17_lost_sync_token_full_resync_no_duplicates_no_deletes(world: World) -> None:
    for i in range(3):
        world.contact(lastname=f"C{i}")
    world.mailboxes["paul"].user_create("contact", {"lastname": "Untracked"})
    world.sync()
    world.mailboxes["paul"].forget_tokens()
    world.mailboxes["paul"].calls.clear()
    report = world.sync(entities=("contact",))["contact"]
    assert report.full_listing and report.writes == 0
    assert world.mailboxes["paul"].writes() == [] and len(world.mailboxes["paul"].items["contact"]) == 4
    assert len(world.links()) == 3


def test_invariant_18_a_moved_item_keeps_its_link(world: World) -> None:
    cid = world.contact()
    world.sync()
    new_id = world.mailboxes["paul"].move("contact", _contact_item(world))
    world.sync()
    (link,) = world.links()
    assert (link.crm_id, link.mailbox_id, link.state) == (cid, new_id, "linked")
    assert world.crm_contact(cid) is not None and len(world.mailboxes["paul"].items["contact"]) == 1
    # a tracked item created in the mailbox gets its CRM id written into it, so it too survives a move
    tracked = world.mailboxes["paul"].user_create("contact", {"lastname": "Mover"}, TRACKED)
    world.sync()
    moved = world.mailboxes["paul"].move("contact", tracked)
    world.sync()
    assert {l.mailbox_id for l in world.links()} == {new_id, moved}
    with world.store.transaction() as s:
        assert s.query(models.Contact).filter_by(lastname="Mover").count() == 1


def test_invariant_19_one_failing_item_does_not_block_the_rest_and_is_retried(world: World) -> None:
    a, b = world.contact(lastname="A"), world.contact(lastname="B")
    world.sync()
    items = {v["lastname"]: i for i, v in world.mailboxes["paul"].values("contact").items()}
    links_before = {l.crm_id: l for l in world.links()}
    world.edit_contact(a, jobtitle="A2")
    world.edit_contact(b, jobtitle="B2")
    world.mailboxes["paul"].fail_next("update", RuntimeError("the server rejected this item"), times=10,
                                      item_id=items["A"])
    report = world.sync(entities=("contact",))["contact"]
    assert [item for item, _ in report.failed] == [f"crm:{a}"] and not report.token_saved
    values = world.mailboxes["paul"].values("contact")
    assert values[items["B"]]["jobtitle"] == "B2" and values[items["A"]]["jobtitle"] is None
    assert {l.crm_id: l for l in world.links()}[a] == links_before[a]  # its link unchanged
    with world.store.transaction() as s:
        (issue,) = issues_txn(s)
    assert issue.item == f"crm:{a}" and "rejected" in issue.last_error
    for _ in range(4):
        world.sync(entities=("contact",))
    with world.store.transaction() as s:
        (issue,) = issues_txn(s)
    assert issue.attempts == 5  # the cap: the token moves on, the item stays listed
    assert world.sync(entities=("contact",))["contact"].token_saved
    world.mailboxes["paul"].failures.clear()
    world.sync(entities=("contact",))
    assert world.mailboxes["paul"].values("contact")[items["A"]]["jobtitle"] == "A2"
    with world.store.transaction() as s:
        assert issues_txn(s) == []


def test_invariant_19_a_mailbox_wide_error_stops_the_run(world: World) -> None:
    world.contact()
    world.mailboxes["paul"].fail_next("changes", Unavailable("connection refused"))
    with pytest.raises(Unavailable):
        world.sync(entities=("contact",))
    assert world.links() == []


def test_invariant_20_one_way_fields_are_respected(world: World) -> None:
    cid = world.contact(firstname="Ann", lastname="Lee")
    world.sync()
    item = _contact_item(world)
    world.mailboxes["paul"].user_update("contact", item, {"fullname": "Annie L."})  # CRM -> mailbox only
    world.sync()
    assert world.crm_contact(cid).fullname == "Ann Lee"
    assert world.mailboxes["paul"].values("contact")[item]["fullname"] == "Annie L."
    world.edit_contact(cid, fullname="Ann B. Lee")  # its own side changes it: overwritten
    world.sync()
    assert world.mailboxes["paul"].values("contact")[item]["fullname"] == "Ann B. Lee"


def test_invariant_21_only_the_organiser_creates_or_cancels_and_past_never_invites(world: World) -> None:
    future = world.appointment(organiser="paul", attendees=("laura",))
    past = world.appointment(organiser="paul", attendees=("laura",), start=world.now - timedelta(days=3))
    world.sync("paul")
    world.sync("laura")
    paul, laura = world.mailboxes["paul"], world.mailboxes["laura"]
    assert paul.calls.count("create") == 2 and paul.calls.count("invite") == 1  # the past one sends nothing
    assert not laura.items["appointment"]  # the attendee's copy comes from the server, never from abook
    uid = paul.values("appointment")[next(iter(paul.items["appointment"]))]["uid"]
    copy = laura.user_create("appointment", {**next(iter(paul.values("appointment").values()))},
                             uid=[v["uid"] for v in paul.values("appointment").values() if v["uid"].startswith(future)][0])
    world.sync("laura")
    assert [l.mailbox_id for l in world.links("laura", "appointment")] == [copy] and uid
    laura.calls.clear()
    world.delete(models.Activity, future)
    world.sync("laura")
    assert "cancel" not in laura.calls and copy in laura.items["appointment"]
    world.sync("paul")
    assert paul.calls.count("cancel") == 1 and len(paul.items["appointment"]) == 1
    world.delete(models.Activity, past)  # a past meeting deleted in the CRM: its copy stays, nobody is told
    world.sync("paul")
    assert paul.calls.count("cancel") == 1 and len(paul.items["appointment"]) == 1


@pytest.mark.parametrize("state", [ActivityState.completed, ActivityState.canceled])
def test_invariant_21_a_completed_or_cancelled_future_meeting_invites_nobody(world: World, state) -> None:
    world.appointment(organiser="paul", attendees=("laura", "ext@elsewhere.example"), statecode=int(state))
    world.sync("paul", entities=("appointment",))
    paul = world.mailboxes["paul"]
    assert paul.calls.count("create") == 1 and "invite" not in paul.calls


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "Australia/Lord_Howe", "America/St_Johns", "Europe/Berlin",
                                  "America/New_York", "Pacific/Chatham"])
def test_invariant_22_times_round_trip_across_zones_and_dst(world: World, zone: str) -> None:
    tz = ZoneInfo(zone)
    starts = [datetime(2026, 3, 8, 1, 59, 59, tzinfo=tz), datetime(2026, 3, 29, 2, 30, tzinfo=timezone.utc),
              datetime(2026, 4, 5, 2, 30, tzinfo=tz), datetime(2026, 10, 25, 0, 45, tzinfo=timezone.utc),
              datetime(2026, 11, 1, 1, 30, tzinfo=tz, fold=1)]
    made = [world.appointment(start=s, hours=1.5, timezone=zone) for s in starts]
    day = datetime(2026, 3, 29, tzinfo=tz).astimezone(timezone.utc)
    allday = world.appointment(start=day, hours=0, timezone=zone, alldayevent=True,
                               scheduledend=datetime(2026, 3, 31, tzinfo=tz).astimezone(timezone.utc))
    world.sync(entities=("appointment",))
    whens = {v["when"] for v in world.mailboxes["paul"].values("appointment").values()}
    assert "2026-03-29/2026-03-31" in whens
    for item_id in list(world.mailboxes["paul"].items["appointment"]):  # each comes back to the CRM once
        world.mailboxes["paul"].user_update("appointment", item_id, {"location": "moved"})
    world.sync(entities=("appointment",))
    for aid, start in zip(made, starts):
        got = world.activity(aid)
        assert got.scheduledstart == start.astimezone(timezone.utc)
        assert got.scheduledend == (start + timedelta(hours=1.5)).astimezone(timezone.utc)
        assert got.location == "moved"
    got = world.activity(allday)
    assert got.alldayevent and got.scheduledstart.astimezone(tz).date().isoformat() == "2026-03-29"
    assert got.scheduledend.astimezone(tz).date().isoformat() == "2026-03-31"


def test_invariant_22_a_series_keeps_its_wall_clock_time_across_dst(world: World) -> None:
    tz = ZoneInfo("Europe/Berlin")
    weekly = [datetime(2026, 3, 16, 9, 0, tzinfo=tz) + timedelta(weeks=i) for i in range(4)]  # DST on 29 March
    for start in weekly:
        world.appointment(start=start.astimezone(timezone.utc), seriesid="s1", originalstart=start, timezone="Europe/Berlin")
    world.sync(entities=("appointment",))
    from abook.mailbox.pim.schema import parse_when

    local = sorted(parse_when(v["when"])[0].astimezone(tz).strftime("%H:%M") for v in
                   world.mailboxes["paul"].values("appointment").values())
    assert local == ["09:00"] * 4


def test_invariant_23_bounded_work(world: World) -> None:
    cids = [world.contact(lastname=f"C{i}") for i in range(20)]
    world.sync()
    world.mailboxes["paul"].calls.clear()
    assert world.sync(entities=("contact",))["contact"].writes == 0
    assert set(world.mailboxes["paul"].calls) <= {"changes", "get", "find"}  # reads only
    for cid in cids[:3]:
        world.edit_contact(cid, jobtitle="x")
    items = list(world.mailboxes["paul"].items["contact"])
    world.mailboxes["paul"].user_update("contact", items[10], {"nickname": "y"})
    world.mailboxes["paul"].calls.clear()
    report = world.sync(entities=("contact",))["contact"]
    assert report.writes <= 4 and world.mailboxes["paul"].writes() == ["update"] * 3
    assert world.mailboxes["paul"].calls.count("get") == 1  # one fetch, of the changed item only


def test_invariant_09_an_item_created_then_deleted_between_two_tokens_counts_as_deleted(world: World) -> None:
    """A server's change log does not report the delete of an item created after the saved token's listing
    (for it, the item never existed): abook reads such items once before it trusts their absence."""
    world.contact(lastname="A")
    world.contact(lastname="B")
    world.sync(entities=("contact",))  # creates both after this sync's listing
    first = next(iter(world.mailboxes["paul"].items["contact"]))
    world.mailboxes["paul"].user_delete("contact", first)
    world.sync(entities=("contact",))
    links = world.links()
    assert [l.state for l in links].count("tombstone") == 1 and [l.state for l in links].count("linked") == 1
    assert first not in {l.mailbox_id for l in links}
    assert not any(l.verify for l in links)  # read once; later deltas report them


def test_invariant_15_a_recovered_create_carries_the_crm_edits_made_since(world: World) -> None:
    """Interrupted after the item was created, the record is edited before the next sync: the recovery links
    the item *and* brings it the edit, as an uninterrupted create followed by the edit would have."""
    cid = world.contact(jobtitle="Clerk")

    def crash(at: str) -> None:
        if at == "create_mailbox:created":
            raise Interrupted(at)

    with pytest.raises(Interrupted):
        world.sync(entities=("contact",), crash=crash)
    world.edit_contact(cid, jobtitle="Chief")
    world.sync(entities=("contact",))
    assert world.mailboxes["paul"].values("contact")[_contact_item(world)]["jobtitle"] == "Chief"
    assert world.crm_contact(cid).jobtitle == "Chief"
    world.mailboxes["paul"].calls.clear()
    assert world.sync(entities=("contact",))["contact"].writes == 0
    assert world.mailboxes["paul"].writes() == []


def _settle(w: World, cid: str, item: str, policy: str) -> None:
    """The first sync after both sides moved apart: ``manual`` lists the conflict and writes nothing until it
    is resolved (for the mailbox); then both sides hold the winner and a further sync writes nothing."""
    from abook.store.sync_conflicts import resolve_conflict_txn

    w.sync(entities=("contact",))
    if policy == "manual":
        assert w.crm_contact(cid).jobtitle == "CRM title"
        assert w.mailboxes["paul"].values("contact")[item]["jobtitle"] == "Mailbox title"
        with w.store.transaction() as s:
            (conflict,) = conflicts_txn(s)
            assert conflict.fields == {"jobtitle": {"crm": "CRM title", "mailbox": "Mailbox title"}}
            resolve_conflict_txn(s, conflict.id, "mailbox")
        w.sync(entities=("contact",))
    winner = "CRM title" if policy == "crm" else "Mailbox title"
    assert w.crm_contact(cid).jobtitle == winner
    assert w.mailboxes["paul"].values("contact")[item]["jobtitle"] == winner
    assert list(w.mailboxes["paul"].items["contact"]) == [item]  # never a second copy
    (link,) = w.links()
    assert link.state == "linked" and link.mailbox_id == item
    w.mailboxes["paul"].calls.clear()
    assert w.sync(entities=("contact",))["contact"].writes == 0 and w.mailboxes["paul"].writes() == []


@pytest.mark.parametrize("policy", ["crm", "mailbox", "manual"])
def test_invariant_03_a_record_back_in_the_filter_merges_with_the_copy_it_left_behind(tmp_path, policy: str) -> None:
    """A contact left the filter while its mailbox copy was edited: the copy stays, carrying the CRM id, and
    the sync leaves it alone (its link is kept as ``detached``). Both sides are edited again and the record
    comes back: the pair merges from its last-synced values (no second copy), the field both sides changed
    settled by the entity's conflict policy."""
    w = new_world(tmp_path, policies={e: Policy(e, conflict=policy) for e in ("contact", "appointment", "task")})
    cid = w.contact(jobtitle="Clerk")
    w.sync(entities=("contact",))
    item = _contact_item(w)
    w.mailboxes["paul"].user_update("contact", item, {"jobtitle": "Mailbox title"})
    w.edit_contact(cid, statecode=1)
    w.sync(entities=("contact",))
    assert [link.state for link in w.links()] == ["detached"] and _contact_item(w) == item
    w.mailboxes["paul"].user_update("contact", item, {"department": "Sales"})  # left alone while out
    w.mailboxes["paul"].calls.clear()
    w.sync(entities=("contact",))
    assert w.mailboxes["paul"].writes() == [] and w.crm_contact(cid).department is None
    w.edit_contact(cid, statecode=0, jobtitle="CRM title")
    _settle(w, cid, item, policy)
    assert w.crm_contact(cid).department == "Sales"  # changed on one side only: it flows
    w.store.dispose()


@pytest.mark.parametrize("policy", ["crm", "mailbox", "manual"])
def test_invariant_03_a_pair_with_no_last_synced_values_is_settled_by_the_conflict_policy(tmp_path, policy: str) -> None:
    """The links are lost (a store restored from an older backup) while both sides were edited: the item
    is found by the CRM id it carries and paired; nobody knows which side moved, so the fields that differ
    are settled by the conflict policy in that same sync, never left apart."""
    from abook.store.sync_links import SyncLink

    w = new_world(tmp_path, policies={e: Policy(e, conflict=policy) for e in ("contact", "appointment", "task")})
    cid = w.contact(jobtitle="Clerk")
    w.sync(entities=("contact",))
    item = _contact_item(w)
    with w.store.transaction() as s:
        s.query(SyncLink).delete()
    w.mailboxes["paul"].forget_tokens()
    w.mailboxes["paul"].user_update("contact", item, {"jobtitle": "Mailbox title"})
    w.edit_contact(cid, jobtitle="CRM title")
    _settle(w, cid, item, policy)
    w.store.dispose()


def test_invariant_03_a_detached_copy_is_forgotten_once_either_side_is_gone(world: World) -> None:
    cid = world.contact(jobtitle="Clerk")
    world.sync(entities=("contact",))
    item = _contact_item(world)
    world.mailboxes["paul"].user_update("contact", item, {"jobtitle": "Mine"})
    world.edit_contact(cid, statecode=1)
    world.sync(entities=("contact",))
    world.mailboxes["paul"].user_delete("contact", item)
    world.sync(entities=("contact",))
    assert world.links() == [] and world.crm_contact(cid) is not None
    world.edit_contact(cid, statecode=0)
    world.sync(entities=("contact",))  # back in the filter, no copy left: a fresh one
    assert [v["jobtitle"] for v in world.mailboxes["paul"].values("contact").values()] == ["Clerk"]


def test_invariant_15_a_recovered_create_whose_record_left_the_filter_leaves_in_the_same_sync(world: World) -> None:
    """Interrupted after the item was created, the record is deactivated before the next sync: the copy
    goes in that sync (as it would have after an uninterrupted create), not one sync later (invariant 1)."""
    cid = world.contact()

    def crash(at: str) -> None:
        if at == "create_mailbox:created":
            raise Interrupted(at)

    with pytest.raises(Interrupted):
        world.sync(entities=("contact",), crash=crash)
    world.edit_contact(cid, statecode=1)
    world.sync(entities=("contact",))
    assert world.mailboxes["paul"].items["contact"] == {} and world.links() == []
    assert world.crm_contact(cid) is not None
    world.mailboxes["paul"].calls.clear()
    assert world.sync(entities=("contact",))["contact"].writes == 0
