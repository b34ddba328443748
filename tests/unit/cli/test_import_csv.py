"""`abook import FILE.csv` as an admin reads it: what the file was read as, what was left out, and the
one-line refusal of an unknown column."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import REPO


def test_import_summary_names_the_export_and_what_it_left_out(abook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    abook("bu", "add", "Acme")
    abook("user", "add", "nora", "--bu", "Acme")
    f = tmp_path / "outlook.csv"
    f.write_text('"First Name","Last Name","E-mail Address","Birthday"\n"John","Johnson","john@contoso.example",'
                 '"1/2/1980"\n', encoding="utf-8")
    r = abook("import", str(f), "--owner", "nora")
    assert r.rc == 0
    assert r.out.splitlines()[1:] == ["read as an Outlook contacts export",
                                      "columns not imported (no field in abook): Birthday"]


def test_an_unknown_column_is_one_line_and_the_option_imports_the_rest(abook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    abook("bu", "add", "Acme")
    abook("user", "add", "nora", "--bu", "Acme")
    f = tmp_path / "typo.csv"
    f.write_text("firstname,lastname,emailaddress1,mobilphone\nOtto,Normal,otto@example.de,+49 1\n")
    r = abook("import", str(f), "--owner", "nora")
    assert (r.rc, r.out) == (2, "")
    assert r.err == ("abook: typo.csv:1: unknown column 'mobilphone': not a contact column (a typo would lose its "
                     "values); --ignore-unknown-columns imports the other columns\n")
    r = abook("import", str(f), "--owner", "nora", "--ignore-unknown-columns")
    assert r.rc == 0 and r.out.splitlines()[1] == "columns not imported (no field in abook): mobilphone"


def test_the_readme_example_file(abook) -> None:  # type: ignore[no-untyped-def]
    abook("bu", "add", "Acme")
    abook("user", "add", "nora", "--bu", "Acme")
    r = abook("import", str(REPO / "examples" / "contacts.csv"), "--owner", "nora")
    assert r.rc == 0 and "3 records (3 added, 0 changed, 0 unchanged" in r.out
