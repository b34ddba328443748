"""`abook export --format csv`: one entity per file in the columns `abook import` reads, so that the demo
organisation (plus activities and awkward text) goes export -> import into a fresh store -> export unchanged."""

from __future__ import annotations

import csv
import io
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from abook.cli import main
from abook.store import Store, activities, models
from abook.transfer import TABLES, export_csv, export_to, import_file
from abook.transfer.csv_rows import CsvReport, read_csv
from tests.unit.transfer.conftest import DEMO, other_store, snapshot  # noqa: F401 (fixture)

#: commas, quotes, line breaks (CRLF too) and non-ASCII, the things CSV has to quote or encode
AWKWARD = 'M\u00fcller, "the boss"\nsecond line\r\nthird \u65e5\u672c \u2013 end'
CONTACT = "50000000-0000-4000-8000-000000000001"
T0 = datetime(2026, 3, 29, 7, 30, tzinfo=timezone.utc)


def _config(store: Store, tmp_path: Path, name: str) -> Path:
    f = tmp_path / name
    f.write_text(f'[store]\nurl = "{store.engine.url.render_as_string(hide_password=False)}"\n')
    return f


@pytest.fixture
def org(store: Store) -> Store:
    """The demo organisation, an awkward contact description and two activities (one regarding a contact)."""
    import_file(store, DEMO)
    with store.transaction() as s:
        s.get(models.Contact, CONTACT).description = AWKWARD
        parties = activities.resolve_parties_txn(s, [("organiser", "carol@example.com", "Carol"),
                                                     ("required", "alice@example.com", None),
                                                     ("optional", "guest@elsewhere.example", "A Guest")])
        activities.create_activity_txn(s, "appointment", "carol", subject=AWKWARD, scheduledstart=T0,
                                       scheduledend=T0 + timedelta(hours=1), timezone="Europe/Berlin",
                                       parties=parties)
        activities.create_activity_txn(s, "phonecall", "bob", subject="Ring", phonenumber="+1 555",
                                       directioncode=True, regarding_type="contact", regarding_id=CONTACT)
    return store


def _export_all(config: Path, directory: Path) -> dict[str, bytes]:
    directory.mkdir()
    for table in TABLES:  # -o *.csv means csv
        assert main(["export", "-c", str(config), "-o", str(directory / f"{table}.csv"), "--entity", table]) == 0
    return {t: (directory / f"{t}.csv").read_bytes() for t in TABLES}


def test_every_entity_round_trips_through_csv(org: Store, other_store: Store, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    first = _export_all(_config(org, tmp_path, "a.toml"), tmp_path / "first")
    assert "exported 8 records (8 systemuser) as CSV" in capsys.readouterr().err
    fresh = _config(other_store, tmp_path, "b.toml")
    for table in TABLES:  # parents first; the entity is detected from the id column
        assert main(["import", "-c", str(fresh), str(tmp_path / "first" / f"{table}.csv")]) == 0
    assert _export_all(fresh, tmp_path / "second") == first
    before, after = snapshot(org), snapshot(other_store)
    for table in TABLES:  # every column of every record, owners and parents included
        name = models.ENTITY_MODELS.get(table, {"businessunit": models.BusinessUnit, "role": models.Role,
                                                "activity": models.Activity}.get(table)).__tablename__
        if table == "systemuser":  # never a password in CSV: the users arrive without one
            hash_at = list(models.SystemUser.__table__.columns.keys()).index("password_hash")
            assert {r[hash_at] for r in after[name]} == {None} and {r[hash_at] for r in before[name]} != {None}
            before[name] = [r[:hash_at] + (None,) + r[hash_at + 1:] for r in before[name]]
        assert after[name] == before[name], table
    assert len(after["activity"]) == 2
    # what LDIF repeats, CSV lists in one cell: roles' read depths, users' roles, activities' parties
    assert after["roleprivilege"] == before["roleprivilege"] and after["systemuserroles"] == before["systemuserroles"]
    assert len(before["roleprivilege"]) > 6 and len(before["systemuserroles"]) >= 8
    ldif = [io.StringIO(), io.StringIO()]
    export_to(org, ldif[0], tables=["activity"])
    export_to(other_store, ldif[1], tables=["activity"])
    assert ldif[0].getvalue() == ldif[1].getvalue() and ldif[0].getvalue().count("party: ") == 3


def test_awkward_text_survives_and_the_file_is_rfc_4180(org: Store, tmp_path: Path) -> None:
    files = _export_all(_config(org, tmp_path, "a.toml"), tmp_path / "out")
    text = files["contact"].decode("utf-8")  # UTF-8, no BOM
    assert not text.startswith("\ufeff") and text.startswith("contactid,")
    rows = list(csv.DictReader(io.StringIO(text, newline="")))
    assert len(rows) == 16
    assert next(r for r in rows if r["contactid"] == CONTACT)["description"] == AWKWARD
    assert '"M\u00fcller, ""the boss""\n' in text  # quoted, quotes doubled
    assert next(r for r in rows if r["contactid"] == CONTACT)["ownerid"].isidentifier()  # a user name, not an id
    acts = list(csv.DictReader(io.StringIO(files["activity"].decode(), newline="")))
    meeting = next(a for a in acts if a["activitytypecode"] == "appointment")
    assert meeting["subject"] == AWKWARD and meeting["party"].split("\n")[0] == \
        "organiser|carol@example.com|systemuser|30000000-0000-4000-8000-000000000004|Carol"
    call = next(a for a in acts if a["activitytypecode"] == "phonecall")
    assert (call["regarding_type"], call["regarding_id"], call["party"]) == ("contact", CONTACT, "")


def test_the_columns_are_exactly_what_import_reads(org: Store, tmp_path: Path) -> None:
    files = _export_all(_config(org, tmp_path, "a.toml"), tmp_path / "out")
    for table, data in files.items():
        header = data.decode().split("\r\n", 1)[0]
        report = CsvReport()
        assert list(read_csv(io.StringIO(header + "\r\n"), "h.csv", None, report)) == []  # no unknown column
        assert report.entity == table
    users = files["systemuser"].decode()
    assert "argon2" not in users.lower() and "password" not in users.lower()


@pytest.mark.parametrize("args", [["--format", "csv"], ["-o", "{tmp}/x.csv"], ["--format", "csv", "--entity", "contact",
                                                                               "--entity", "account"]])
def test_csv_needs_exactly_one_entity(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                      args: list[str]) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    assert main(["export", "-c", str(_config(store, tmp_path, "a.toml")), *args]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("abook: a CSV export holds one entity: give --entity exactly once, one of "
                                        "businessunit, role, systemuser,")
    assert err.rstrip().endswith("(given: none)" if "--entity" not in args else "(given: contact, account)")
    assert not (tmp_path / "x.csv").exists()


def test_the_file_is_readable_by_its_owner_only(org: Store, tmp_path: Path) -> None:
    out = tmp_path / "users.csv"
    out.write_text("old")
    out.chmod(0o644)
    old = os.umask(0)
    try:
        assert main(["export", "-c", str(_config(org, tmp_path, "a.toml")), "-o", str(out),
                     "--entity", "systemuser"]) == 0
        assert main(["export", "-c", str(_config(org, tmp_path, "a.toml")), "-o", str(tmp_path / "new.txt"),
                     "--format", "csv", "--entity", "role"]) == 0
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "new.txt").stat().st_mode) == 0o600
    assert out.read_text().startswith("systemuserid,") and (tmp_path / "new.txt").read_text().startswith("roleid,")


def test_standard_output_and_ldif_stays_the_default(org: Store, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(org, tmp_path, "a.toml"))
    assert main(["export", "-c", config, "--format", "csv", "--entity", "queue"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("queueid,") and len(list(csv.reader(io.StringIO(out)))) == 1 + 3
    assert main(["export", "-c", config, "--entity", "queue"]) == 0
    assert capsys.readouterr().out.startswith("version: 1")


def test_a_list_column_is_the_whole_list_and_its_absence_leaves_it_alone(org: Store, tmp_path: Path) -> None:
    alice = "30000000-0000-4000-8000-000000000002"
    f = tmp_path / "u.csv"
    f.write_text(f"systemuserid,jobtitle\n{alice},Boss\n")
    import_file(org, f)
    before = [r for r in snapshot(org)["systemuserroles"] if r[0] == alice]
    assert before  # alice keeps the roles the file did not mention
    f.write_text(f"systemuserid,roleid\n{alice},\n")
    assert import_file(org, f).changed == 1
    assert [r for r in snapshot(org)["systemuserroles"] if r[0] == alice] == []


def test_more_rows_than_one_chunk_stream_with_their_owners(sqlite_store: Store, tmp_path: Path) -> None:
    import_file(sqlite_store, DEMO)
    f = tmp_path / "many.csv"
    f.write_text("lastname,emailaddress1,ownerid\n" + "".join(
        f"N{i},n{i}@bulk.example,{('bob', 'carol', 'alice')[i % 3]}\n" for i in range(1234)))
    import_file(sqlite_store, f)
    out = io.StringIO()
    assert export_csv(sqlite_store, out, "contact") == 16 + 1234
    rows = list(csv.DictReader(io.StringIO(out.getvalue(), newline="")))
    assert len(rows) == 16 + 1234 and len({r["contactid"] for r in rows}) == len(rows)
    assert {r["ownerid"] for r in rows if r["emailaddress1"].endswith("@bulk.example")} == {"alice", "bob", "carol"}
