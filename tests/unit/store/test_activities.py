"""Appointments, tasks, faxes, letters and phone calls in the store: parties, states, visibility, transfer, CLI."""

from __future__ import annotations

import io
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from abook.cli import main
from abook.errors import UserError
from abook.store import Store, activities, make_engine, models, schema
from abook.store.enums import ActivityState
from abook.store.org import add_role_txn
from abook.store.settings import parse_depths
from abook.store.users import change_roles_txn
from abook.transfer import export_to, import_file
from tests.unit.transfer.conftest import DEMO, other_store  # noqa: F401 (fixture)

T0 = datetime(2026, 3, 29, 7, 30, tzinfo=timezone.utc)


@pytest.fixture
def org(store: Store) -> Store:
    import_file(store, DEMO)
    return store


def _meeting(s, owner: str = "carol", **values) -> activities.ActivityRecord:  # type: ignore[no-untyped-def]
    parties = activities.resolve_parties_txn(s, [("organiser", "carol@example.com", "Carol"),
                                                 ("required", "alice@example.com", None),
                                                 ("optional", "guest@elsewhere.example", "A Guest")])
    values = {"subject": "Planning", "scheduledstart": T0, "scheduledend": T0 + timedelta(hours=1),
              "timezone": "Europe/Berlin", "location": "Room 1", **values}
    return activities.create_activity_txn(s, "appointment", owner, parties=parties, **values)


def test_an_appointment_keeps_organiser_attendees_time_zone_and_state(org: Store) -> None:
    with org.transaction() as s:
        made = _meeting(s)
    with org.transaction() as s:
        got = activities.get_activity_txn(s, made.id)
    assert got.kind == "appointment" and got.statecode == ActivityState.scheduled
    assert (got.scheduledstart, got.scheduledend, got.timezone) == (T0, T0 + timedelta(hours=1), "Europe/Berlin")
    roles = [(p.role, p.party_type, p.address) for p in got.parties]
    assert roles == [("organiser", "systemuser", "carol@example.com"), ("required", "systemuser", "alice@example.com"),
                     ("optional", None, "guest@elsewhere.example")]
    assert got.owner_id == "30000000-0000-4000-8000-000000000004"  # carol
    with org.transaction() as s:
        owner_bu = s.get(models.SystemUser, got.owner_id).business_unit_id
        assert s.get(models.Activity, got.id).owningbusinessunit_id == owner_bu


def test_occurrences_of_a_series_are_records_of_their_own(org: Store) -> None:
    with org.transaction() as s:
        for week in range(3):
            start = T0 + timedelta(weeks=week)
            _meeting(s, seriesid="series-1", originalstart=start, scheduledstart=start,
                     scheduledend=start + timedelta(hours=1))
        rows = s.scalars(select(models.Activity.originalstart).where(models.Activity.seriesid == "series-1")).all()
    assert len(rows) == 3


def test_update_moves_modifiedon_only_when_something_changed(org: Store) -> None:
    with org.transaction() as s:
        task = activities.create_activity_txn(s, "task", "bob", subject="Call back", scheduledend=T0)
    with org.transaction() as s:
        same = activities.update_activity_txn(s, task.id, {"subject": "Call back", "scheduledend": T0})
    assert same.modifiedon == task.modifiedon
    with org.transaction() as s:
        done = activities.update_activity_txn(s, task.id, {"statecode": int(ActivityState.completed),
                                                           "percentcomplete": 100})
    assert done.modifiedon > task.modifiedon and done.statuscode == 5
    with pytest.raises(UserError, match="bad statecode 3 for a task"), org.transaction() as s:
        activities.update_activity_txn(s, task.id, {"statecode": int(ActivityState.scheduled)})
    with org.transaction() as s:
        activities.delete_activity_txn(s, task.id)
        assert s.get(models.Activity, task.id) is None


def test_every_kind_has_owner_state_and_regarding(org: Store) -> None:
    contact = "50000000-0000-4000-8000-000000000001"
    with org.transaction() as s:
        made = [activities.create_activity_txn(s, kind, "bob", subject=kind, regarding_type="contact",
                                               regarding_id=contact, phonenumber="+49 30 1" if kind == "phonecall" else None)
                for kind in ("task", "fax", "letter", "phonecall")]
    with org.transaction() as s:
        got = activities.list_activities_txn(s, owner="bob")
    assert sorted(r.kind for r in got) == ["fax", "letter", "phonecall", "task"]
    assert {(r.regarding_type, r.regarding_id, r.statecode) for r in got} == {("contact", contact, 0)}
    assert {r.id for r in made} == {r.id for r in got}


def test_read_depth_over_activities_follows_the_activity_privilege(org: Store) -> None:
    with org.transaction() as s:
        mine = activities.create_activity_txn(s, "task", "bob", subject="bob's")  # Sales North
        theirs = activities.create_activity_txn(s, "task", "carol", subject="carol's")  # Sales South
        add_role_txn(s, "Own Activities", parse_depths(["activity=user"]))
        add_role_txn(s, "Unit Activities", parse_depths(["activity=parent_child"]))
        change_roles_txn(s, "bob", grant=["Own Activities"])
        change_roles_txn(s, "frank", grant=["Unit Activities"])  # Sales: Sales North and South below it
    with org.transaction() as s:
        assert [r.id for r in activities.list_activities_txn(s, readable_by="bob")] == [mine.id]
        assert {r.id for r in activities.list_activities_txn(s, readable_by="frank")} == {mine.id, theirs.id}
        assert activities.list_activities_txn(s, readable_by="gina") == []  # no activity privilege: none


def test_activities_travel_through_ldif_export_and_import(org: Store, other_store: Store, tmp_path: Path) -> None:
    with org.transaction() as s:
        made = _meeting(s, alldayevent=False, description="line 1\nline 2")
        activities.create_activity_txn(s, "phonecall", "bob", subject="Ring", phonenumber="+1 555", directioncode=True)
        add_role_txn(s, "Own Activities", parse_depths(["activity=user"]))
    out = io.StringIO()
    export_to(org, out)
    ldif = out.getvalue()
    assert "party: organiser|carol@example.com|systemuser|30000000-0000-4000-8000-000000000004|Carol" in \
        ldif.replace("\n ", "")  # unfolded
    assert "readdepth: activity=user" in ldif
    path = tmp_path / "act.ldif"
    path.write_text(ldif)
    first = import_file(other_store, path)
    assert first.added == 53 + 3
    with other_store.transaction() as s:
        got = activities.get_activity_txn(s, made.id)
    assert [(p.role, p.address, p.party_id) for p in got.parties] == [(p.role, p.address, p.party_id) for p in made.parties]
    assert (got.description, got.scheduledstart, got.timezone) == ("line 1\nline 2", T0, "Europe/Berlin")
    again = import_file(other_store, path)
    assert (again.added, again.changed) == (0, 0)


def test_contacts_carry_the_mailbox_fields(org: Store, tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_text("contactid,lastname,business2,home2,company,assistantname,assistantphone,managername,spousesname,"
                 "childrensnames,birthdate,anniversary\n"
                 "60000000-0000-4000-8000-000000000001,Nobody,+1 2,+1 3,+1 4,Ann,+1 5,Max,Sam,Kim; Lee,1980-02-29,"
                 "2010-06-01\n")
    import_file(org, f)
    with org.transaction() as s:
        c = s.get(models.Contact, "60000000-0000-4000-8000-000000000001")
        assert (c.business2, c.company, c.birthdate, c.anniversary, c.childrensnames) == \
            ("+1 2", "+1 4", date(1980, 2, 29), date(2010, 6, 1), "Kim; Lee")
    out = io.StringIO()
    export_to(org, out, tables=["contact"])
    assert "birthdate: 1980-02-29" in out.getvalue()


def test_migration_from_0001_keeps_data_and_the_search_index(tmp_path: Path) -> None:
    """An existing store moves to the sync revision without losing rows, expression indexes or triggers."""
    engine = make_engine(f"sqlite:///{tmp_path / 'old.sqlite3'}")
    schema.upgrade(engine, "0001")
    store = Store(engine)
    with engine.begin() as c:  # rows as revision 0001 has them (the models are already the new revision's)
        c.execute(text("INSERT INTO businessunit (id, name, statecode, createdon, modifiedon) "
                       "VALUES ('b1', 'Unit', 0, '2026-01-01', '2026-01-01')"))
        c.execute(text("INSERT INTO systemuser (id, domainname, business_unit_id, statecode, address_book_matching, "
                       "local_filter_scope, local_filter_include_inactive, token_counter, createdon, modifiedon, "
                       "tracking_option, incoming_method, outgoing_method) VALUES ('u1', 'carol', 'b1', 0, "
                       "'synchronised', 'user', 0, 0, '2026-01-01', '2026-01-01', 'all', 'none', 'none')"))
        c.execute(text("INSERT INTO contact (id, lastname, emailaddress1, owner_id, owningbusinessunit_id, statecode, "
                       "createdon, modifiedon) VALUES ('c1', 'Kept', 'kept@example.com', 'u1', 'b1', 0, '2026-01-01', "
                       "'2026-01-01')"))

    def shape() -> set[tuple[str, str]]:
        with engine.connect() as c:
            return set(c.execute(text("SELECT type, name FROM sqlite_master WHERE type IN ('index', 'trigger') "
                                      "AND name NOT LIKE 'sqlite_autoindex%'")).all())

    before = shape()
    schema.upgrade(engine)
    after = shape()
    assert before - after == {("index", "ix_synclink_systemuser_id")}  # the rebuilt link table's old index
    schema.check(engine)
    with store.transaction() as s:
        assert s.get(models.Contact, "c1").lastname == "Kept"
        assert s.get(models.SystemUser, "u1").sync_enabled is False
        hits = s.execute(text("SELECT rowid FROM dirsearch_contact WHERE dirsearch_contact MATCH 'kep'")).all()
        assert len(hits) == 1  # the trigram index still has the row, and its triggers fire on a change:
        s.get(models.Contact, "c1").lastname = "Moved"
        s.flush()
        assert s.execute(text("SELECT rowid FROM dirsearch_contact WHERE dirsearch_contact MATCH 'mov'")).all()
    engine.dispose()


def test_cli_creates_and_lists_activities(org: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "abook.toml"
    config.write_text(f'[store]\nurl = "{org.engine.url.render_as_string(hide_password=False)}"\n')
    assert main(["activity", "create", "appointment", "-c", str(config), "--owner", "carol", "--subject", "Review",
                 "--start", "2026-10-25T09:30", "--end", "2026-10-25T10:30", "--tz", "Europe/Berlin",
                 "--organiser", "carol@example.com", "--required", "alice@example.com"]) == 0
    made = capsys.readouterr().out.split()[-1]
    assert main(["activity", "create", "task", "-c", str(config), "--owner", "bob", "--subject", "Send offer",
                 "--end", "2026-10-30"]) == 0
    capsys.readouterr()
    assert main(["activity", "list", "-c", str(config), "--type", "appointment"]) == 0
    out = capsys.readouterr().out
    assert made in out and "2026-10-25 08:30" in out and "Send offer" not in out  # 09:30 summer time = 08:30 UTC
    assert main(["activity", "show", "-c", str(config), made]) == 0
    assert "party:           required alice@example.com (systemuser" in capsys.readouterr().out
    assert main(["activity", "create", "task", "-c", str(config), "--owner", "bob", "--subject", "x",
                 "--tz", "Mars/Olympus"]) == 2
    assert "unknown time zone 'Mars/Olympus'" in capsys.readouterr().err
