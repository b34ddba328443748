"""CSV import a person can use: every entity detected, Outlook and Google contacts exports, a header abook
does not understand said so, unknown columns refused unless asked, and full names for CSV people."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import select

from abook.store import Store
from abook.store.models import Account, BusinessUnit, Contact, Role
from abook.transfer import export_to, import_file
from abook.transfer.ldif import LdifError
from tests.helpers import REPO
from tests.unit.transfer.conftest import DEMO

OWNER = "30000000-0000-4000-8000-000000000003"  # bob in the demo

OUTLOOK = (
    '"First Name","Middle Name","Last Name","Title","Suffix","Nickname","E-mail Address","E-mail 2 Address",'
    '"Business Phone","Mobile Phone","Company","Job Title","Department","Business Street","Business City",'
    '"Business Postal Code","Business Country/Region","Birthday","Notes","Home Street"\r\n'
    '"John","","Johnson","Mr.","","Jo","john.johnson@contoso.example","jj@home.example","+44 20 7946 0001",'
    '"+44 7700 900001","Contoso Ltd","Buyer","Purchasing","1 High St","London","EC1A 1AA","United Kingdom",'
    '"1/2/1980","met at the fair",""\r\n'
    '"Mary","","Major","","","","","","+44 20 7946 0002","","Contoso Ltd","","","","","","","","",""\r\n'
)

GOOGLE = (
    "First Name,Middle Name,Last Name,Nickname,Organization Name,Organization Title,Birthday,Labels,"
    "E-mail 1 - Label,E-mail 1 - Value,Phone 1 - Label,Phone 1 - Value,Address 1 - City,Address 1 - Country\n"
    "Joanna,,M\u00fcller,,Fabrikam,Head of IT,,* myContacts,* Work,joanna.mueller@fabrikam.example ::: "
    "jm@fabrikam.example,Mobile,+49 151 2345678,Berlin,Germany\n"
)

GOOGLE_OLD = (
    "Name,Given Name,Additional Name,Family Name,Group Membership,E-mail 1 - Type,E-mail 1 - Value,"
    "Organization 1 - Name,Organization 1 - Title\n"
    "Ian Wright,Ian,,Wright,* My Contacts,* Work,ian@wright.example,Wright & Co,Owner\n"
)


@pytest.fixture
def demo(sqlite_store: Store) -> Store:
    import_file(sqlite_store, DEMO)
    return sqlite_store


def contact(store: Store, email: str) -> Contact:
    with store.transaction() as s:
        c = s.scalars(select(Contact).where(Contact.emailaddress1 == email)).one()
        s.expunge(c)
        return c


def csv(tmp_path: Path, text: str, name: str = "in.csv") -> Path:
    f = tmp_path / name
    f.write_text(text, encoding="utf-8")
    return f


def test_entity_detection_knows_business_units_and_roles(sqlite_store: Store, tmp_path: Path) -> None:
    """It used to answer "a row needs a accountid or a emailaddress1" to a file of business units."""
    units = csv(tmp_path, "businessunitid,name,parentbusinessunitid\n"
                          "b0000000-0000-4000-8000-000000000002,Service,Acme\n"
                          "b0000000-0000-4000-8000-000000000001,Acme,\n", "bu-fix.csv")
    assert import_file(sqlite_store, units).added == 2
    roles = csv(tmp_path, "roleid,name\nf0000000-0000-4000-8000-000000000001,Auditor\n", "roles.csv")
    assert import_file(sqlite_store, roles).added == 1
    with sqlite_store.transaction() as s:
        assert sorted(s.scalars(select(BusinessUnit.name))) == ["Acme", "Service"]
        assert list(s.scalars(select(Role.name))) == ["Auditor"]


def test_a_row_without_an_id_says_what_identifies_it(sqlite_store: Store, tmp_path: Path) -> None:
    f = csv(tmp_path, "accountid,name\n,Tailspin Toys\n", "accounts.csv")
    with pytest.raises(LdifError, match=r"^accounts.csv:2: a row needs an accountid \(a GUID\) or an emailaddress1 "
                                        r"to be identified by$"):
        import_file(sqlite_store, f)


def test_an_outlook_export_imports(demo: Store, tmp_path: Path) -> None:
    f = csv(tmp_path, OUTLOOK, "outlook.csv")
    result = import_file(demo, f, default_owner="bob")
    assert (result.added, result.export) == (3, "Outlook")  # two contacts and their account
    assert result.ignored_columns == ("Birthday",)  # Suffix and Home Street hold nothing
    john = contact(demo, "john.johnson@contoso.example")
    assert (john.firstname, john.lastname, john.fullname, john.salutation, john.nickname) == (
        "John", "Johnson", "John Johnson", "Mr.", "Jo")
    assert (john.emailaddress2, john.telephone1, john.mobilephone, john.jobtitle, john.department) == (
        "jj@home.example", "+44 20 7946 0001", "+44 7700 900001", "Buyer", "Purchasing")
    assert (john.address1_line1, john.address1_city, john.address1_postalcode, john.address1_country) == (
        "1 High St", "London", "EC1A 1AA", "United Kingdom")
    assert (john.description, john.owner_id) == ("met at the fair", OWNER)
    with demo.transaction() as s:
        account = s.scalars(select(Account).where(Account.name == "Contoso Ltd")).one()
        assert john.parentcustomer_id == account.id
        mary = s.scalars(select(Contact).where(Contact.lastname == "Major")).one()  # no email: found by name
        assert (mary.fullname, mary.telephone1, mary.parentcustomer_id) == ("Mary Major", "+44 20 7946 0002",
                                                                            account.id)
    again = import_file(demo, f, default_owner="bob")
    assert (again.added, again.changed, again.unchanged) == (0, 0, 2)  # the account is found by name now


@pytest.mark.parametrize("text", [GOOGLE, GOOGLE_OLD])
def test_a_google_export_imports(demo: Store, tmp_path: Path, text: str) -> None:
    result = import_file(demo, csv(tmp_path, text, "google.csv"), default_owner="bob")
    assert result.export == "Google" and result.added == 2
    if text is GOOGLE:
        assert result.ignored_columns == ("E-mail 1 - Label", "Labels", "Phone 1 - Label")
        joanna = contact(demo, "joanna.mueller@fabrikam.example")  # the first of " ::: "-separated values
        assert (joanna.fullname, joanna.jobtitle, joanna.telephone1, joanna.address1_city) == (
            "Joanna M\u00fcller", "Head of IT", "+49 151 2345678", "Berlin")
    else:
        ian = contact(demo, "ian@wright.example")
        assert (ian.fullname, ian.firstname, ian.jobtitle) == ("Ian Wright", "Ian", "Owner")


def test_a_semicolon_separated_file(demo: Store, tmp_path: Path) -> None:
    f = csv(tmp_path, "firstname;lastname;emailaddress1\nOtto;Normal;otto@example.de\n", "excel.csv")
    assert import_file(demo, f, default_owner="bob").added == 1
    assert contact(demo, "otto@example.de").fullname == "Otto Normal"


def test_a_header_abook_does_not_understand_says_so(demo: Store, tmp_path: Path) -> None:
    f = csv(tmp_path, "Vorname,Nachname,E-Mail-Adresse\nOtto,Normal,otto@example.de\n", "de.csv")
    with pytest.raises(LdifError) as e:
        import_file(demo, f)
    assert str(e.value) == (
        "de.csv:1: no column is one abook knows for a contact (the header has 'Vorname', 'Nachname', "
        "'E-Mail-Adresse'): "
        "expected the CRM's column names (firstname, lastname, emailaddress1, ...; see the README, \"CSV "
        "columns\") or an Outlook or Google contacts export")


def test_an_unknown_column_is_an_error_unless_ignored(demo: Store, tmp_path: Path) -> None:
    """`mobilphone` used to be listed as ignored after the import: the typo silently cost the data."""
    f = csv(tmp_path, "firstname,lastname,emailaddress1,mobilphone,favourite_colour\nOtto,Normal,otto@example.de,"
                      "+49 1,blue\n", "typo.csv")
    with pytest.raises(LdifError) as e:
        import_file(demo, f, default_owner="bob")
    assert str(e.value) == ("typo.csv:1: unknown columns 'mobilphone', 'favourite_colour': not a contact column (a "
                            "typo would lose its values); --ignore-unknown-columns imports the other columns")
    result = import_file(demo, f, default_owner="bob", ignore_unknown_columns=True)
    assert (result.added, result.ignored_columns) == (1, ("favourite_colour", "mobilphone"))


def test_csv_people_get_a_full_name_so_exports_carry_cn(demo: Store, tmp_path: Path) -> None:
    f = csv(tmp_path, "firstname,lastname,emailaddress1\nJohn,Johnson,john@example.com\n")
    import_file(demo, f, default_owner="bob")
    assert contact(demo, "john@example.com").fullname == "John Johnson"
    out = io.StringIO()
    export_to(demo, out, tables=["contact"])
    entry = next(e for e in out.getvalue().split("\n\n") if "mail: john@example.com" in e)
    assert "\ncn: John Johnson\n" in entry and "\nsn: Johnson\n" in entry
    import_file(demo, csv(tmp_path, "lastname,emailaddress1\nJohnston,john@example.com\n"))
    assert contact(demo, "john@example.com").fullname == "John Johnston"  # the stored first name kept
    import_file(demo, csv(tmp_path, "fullname,emailaddress1\nDr John Johnston,john@example.com\n"))
    import_file(demo, csv(tmp_path, "telephone1,emailaddress1\n+1 555,john@example.com\n"))
    assert contact(demo, "john@example.com").fullname == "Dr John Johnston"  # not touched by other columns


def test_the_example_file_imports(demo: Store) -> None:
    result = import_file(demo, REPO / "examples" / "contacts.csv", default_owner="bob")
    assert (result.added, result.ignored_columns, result.export) == (3, (), "")
    joanna = contact(demo, "joanna.mueller@fabrikam.example")
    assert (joanna.fullname, joanna.mobilephone, joanna.address1_country) == ("Joanna M\u00fcller",
                                                                              "+49 151 2345678", "Germany")


def test_the_readme_column_table_is_what_import_reads() -> None:
    """Every column the README lists for an entity is one `abook import` takes for it."""
    from abook.transfer.csv_rows import CsvReport, read_csv

    text = (REPO / "README.md").read_text()
    table = text[text.index("| entity (`--entity`) | id column | other columns |"):].split("\n\n")[0]
    rows = [line.split("|")[1:4] for line in table.splitlines()[2:]]
    assert {r[0].strip() for r in rows} == {"contact", "account", "lead", "systemuser", "queue", "equipment",
                                             "businessunit", "role"}
    for entity, id_column, others in rows:
        columns = [id_column.strip()] + [c.split("(")[0].strip() for c in others.split(",")]
        header = ",".join(c for c in columns if c)
        assert list(read_csv(io.StringIO(header + "\n"), "readme.csv", entity.strip(), CsvReport())) == []
        detected = CsvReport()
        list(read_csv(io.StringIO(header + "\n"), "readme.csv", None, detected))
        assert detected.entity == entity.strip()  # the id column names the entity
