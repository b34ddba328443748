"""`import_file` and `export_to` on both databases: the demo organisation, plain LDIF, CSV, and errors."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from abook.passwords import verify_password
from abook.store import Store
from abook.store.models import Account, Contact, Lead, Role, SystemUser
from abook.transfer import export_to, import_file
from abook.transfer.ldif import LdifError
from tests.unit.transfer.conftest import DEMO, snapshot


def export_text(store: Store) -> str:
    out = io.StringIO()
    export_to(store, out)
    return out.getvalue()


def count(store: Store, model: type) -> int:
    with store.transaction() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_demo_imports_and_reimporting_changes_nothing(store: Store) -> None:
    first = import_file(store, DEMO)
    assert (first.added, first.changed, first.unchanged) == (53, 0, 0)
    before = snapshot(store)
    again = import_file(store, DEMO)
    assert (again.added, again.changed, again.unchanged) == (0, 0, 53)
    assert snapshot(store) == before  # modifiedon, password hashes and row counts all untouched
    with store.transaction() as s:
        alice = s.scalars(select(SystemUser).where(SystemUser.domainname == "alice")).one()
        assert verify_password(alice.password_hash, "alice-demo")
        assert [r.name for r in alice.roles] == ["Org Reader"]
        no_leads = s.scalars(select(Role).where(Role.name == "No Leads")).one()
        assert {p.entity: p.read_depth for p in no_leads.privileges}["lead"] == 0
        dave = s.scalars(select(SystemUser).where(SystemUser.domainname == "dave")).one()
        assert (dave.local_filter_scope, dave.local_filter_ldap) == ("organisation", "(co=Germany)")


def test_export_round_trips_to_an_identical_store(store: Store, other_store: Store) -> None:
    import_file(store, DEMO)
    exported = export_text(store)
    assert "demo" not in exported.replace("demo.ldif", "")  # no plain password, only {ARGON2} hashes
    assert exported.count("userPassword: {ARGON2}$argon2id$") == 8
    path = Path(other_store.engine.url.database or "x").parent if other_store.dialect == "sqlite" else None
    f = (path or Path("/tmp")) / f"export-{id(other_store)}.ldif"
    f.write_text(exported, encoding="utf-8")
    try:
        result = import_file(other_store, f)
        assert result.added == 53
        assert export_text(other_store) == exported
        assert snapshot(other_store) == snapshot(store)
        assert import_file(store, f).unchanged == 53  # the export also re-imports into its own store unchanged
    finally:
        f.unlink()


def test_plain_inetorgperson_ldif_maps_onto_contacts_and_upserts_by_dn(store: Store, directory_2000: Path,
                                                                       tmp_path: Path) -> None:
    import_file(store, DEMO)
    result = import_file(store, directory_2000)
    accounts = count(store, Account) - 6
    assert result.added == 2000 + accounts and accounts > 20  # one account per company (o)
    assert result.skipped == 2  # o=crm and ou=Contacts
    with store.transaction() as s:
        for c in s.scalars(select(Contact).where(Contact.source_dn.is_not(None))):
            assert c.fullname and c.source_dn.startswith("cn=") and c.owner_id.startswith("30000000")
        # non-ASCII values came base64-encoded; the DN the contact came from is kept
        (umlaut,) = s.execute(select(func.count()).where(Contact.source_dn.is_not(None),
                                                         Contact.fullname != func.lower(Contact.fullname))).one()
        assert umlaut > 1900
        non_ascii = [c for c in s.scalars(select(Contact).where(Contact.source_dn.is_not(None))) if not c.fullname.isascii()]
        assert len(non_ascii) > 300 and all(c.source_dn == f"cn={c.fullname},ou=Contacts,o=crm"
                                            for c in non_ascii if "," not in c.fullname and "+" not in c.fullname)
        assert s.scalar(select(func.count()).where(Contact.emailaddress2.is_not(None))) > 10  # second mail values
        assert s.scalar(select(func.count()).where(Contact.parentcustomer_id.is_not(None),
                                                   Contact.source_dn.is_not(None))) == 2000
    before = snapshot(store)
    again = import_file(store, directory_2000)
    assert (again.added, again.changed) == (0, 0)
    assert snapshot(store) == before

    # change one person's phone and drop another's title: exactly those two change, modifiedon moves for them
    text = directory_2000.read_text(encoding="utf-8")
    records = text.split("\n\n")
    target = next(i for i, r in enumerate(records) if "telephoneNumber:" in r and "title: " in r and "dn: cn=" in r)
    lines = records[target].splitlines()
    records[target] = "\n".join("telephoneNumber: +49 30 1234567" if ln.startswith("telephoneNumber:") else ln
                                for ln in lines if not ln.startswith("title:"))
    edited = tmp_path / "edited.ldif"
    edited.write_text("\n\n".join(records), encoding="utf-8")
    changed = import_file(store, edited)
    assert (changed.added, changed.changed) == (0, 1)
    with store.transaction() as s:
        dn = next(ln[4:] for ln in lines if ln.startswith("dn: "))
        c = s.scalars(select(Contact).where(Contact.source_dn == dn)).one()
        assert (c.telephone1, c.jobtitle) == ("+49 30 1234567", None)
        assert c.modifiedon > c.createdon
        assert s.scalar(select(func.count()).where(Contact.modifiedon != Contact.createdon)) == 1


def test_plain_ldif_without_a_known_owner_is_refused(store: Store, directory_2000: Path) -> None:
    with pytest.raises(LdifError, match=r"^contacts-2000.ldif:\d+: this record needs an owner and the default owner "
                                        r"'admin' is no user"):
        import_file(store, directory_2000)
    assert count(store, Contact) == 0 and count(store, Account) == 0


def test_plain_ldif_onto_leads(store: Store, tmp_path: Path) -> None:
    import_file(store, DEMO)
    f = tmp_path / "people.ldif"
    f.write_text("dn: cn=Zo\xeb Lee,ou=people,dc=example,dc=com\nobjectClass: inetOrgPerson\ncn: Zo\xeb Lee\nsn: Lee\n"
                 "mail: zoe@example.org\no: Tailspin Toys\n", encoding="utf-8")
    assert import_file(store, f, plain_entity="lead", default_owner="carol").added == 1
    with store.transaction() as s:
        lead = s.scalars(select(Lead).where(Lead.emailaddress1 == "zoe@example.org")).one()
        assert (lead.fullname, lead.companyname, lead.owner_id) == ("Zo\xeb Lee", "Tailspin Toys",
                                                                    "30000000-0000-4000-8000-000000000004")
        assert lead.owningbusinessunit_id == "10000000-0000-4000-8000-000000000004"  # carol's Sales South


CSV = (
    "\ufeffcontactid,firstname,lastname,fullname,emailaddress1,telephone1,parentcustomerid,ownerid,statecode,"
    "Created By\r\n"
    "c0000000-0000-4000-8000-000000000001,Ren\xe9e,Dupont,Ren\xe9e Dupont,renee@example.fr,+33 1 23,"
    "Northwind Traders,bob,Active,someone\r\n"
    ",Otto,Normal,Otto Normal,otto@example.de,,,carol,Inactive,\r\n"
    "c0000000-0000-4000-8000-000000000003,\"Multi\nLine\",Name,,,,,alice,0,\r\n"
)


def test_csv_with_crm_column_names(store: Store, tmp_path: Path) -> None:
    import_file(store, DEMO)
    f = tmp_path / "contacts.csv"
    f.write_text(CSV, encoding="utf-8")
    with pytest.raises(LdifError, match=r"^contacts.csv:1: unknown column 'Created By': not a contact column"):
        import_file(store, f)
    result = import_file(store, f, ignore_unknown_columns=True)
    assert (result.added, result.ignored_columns) == (3, ("Created By",))
    with store.transaction() as s:
        renee = s.get(Contact, "c0000000-0000-4000-8000-000000000001")
        assert (renee.fullname, renee.parentcustomer_id, renee.owner_id, renee.statecode) == (
            "Ren\xe9e Dupont", "40000000-0000-4000-8000-000000000001", "30000000-0000-4000-8000-000000000003", 0)
        otto = s.scalars(select(Contact).where(Contact.emailaddress1 == "otto@example.de")).one()
        assert (otto.statecode, otto.owningbusinessunit_id) == (1, "10000000-0000-4000-8000-000000000004")
        assert s.get(Contact, "c0000000-0000-4000-8000-000000000003").firstname == "Multi\nLine"
    assert import_file(store, f, ignore_unknown_columns=True).unchanged == 3


@pytest.mark.parametrize(("record", "offset", "message"), [
    ("uid: not-a-guid\n", 3, "uid: expected a GUID, got 'not-a-guid'"),
    ("uid: c0000000-0000-4000-8000-000000000009\nownerid: 30000000-0000-4000-8000-000000000099\n", 0,
     "ownerid 30000000-0000-4000-8000-000000000099 names no systemuser in the file or the store"),
    ("uid: c0000000-0000-4000-8000-000000000009\nlastname: " + "x" * 65 + "\n", 4, "lastname: longer than 64 characters"),
    ("uid: c0000000-0000-4000-8000-000000000009\nstatecode: maybe\n", 4, "statecode: expected a whole number, got 'maybe'"),
    ("uid: c0000000-0000-4000-8000-000000000009\nfavouritecolour: blue\n", 4,
     "favouritecolour is not an attribute of a contact record"),
    ("uid: 50000000-0000-4000-8000-000000000001\n", 0,
     "contact 50000000-0000-4000-8000-000000000001 appears twice (line 1 and here)"),
])
def test_a_malformed_record_names_file_and_line_and_imports_nothing(sqlite_store: Store, tmp_path: Path,
                                                                     record: str, offset: int, message: str) -> None:
    store = sqlite_store
    good = ("dn: uid=50000000-0000-4000-8000-000000000001,ou=Contacts,o=crm\nobjectClass: crmRecord\n"
            "crmEntity: contact\nlastname: Good\n\n")
    f = tmp_path / "bad.ldif"
    head = DEMO.read_text(encoding="utf-8").split("\ndn: uid=40000000", 1)[0]  # the organisation
    f.write_text(good + head.split("version: 1\n", 1)[1] + "\n\ndn: uid=x,ou=Contacts,o=crm\nobjectClass: crmRecord\n"
                 "crmEntity: contact\n" + record, encoding="utf-8")
    line = len((good + head.split("version: 1\n", 1)[1]).splitlines()) + 3  # the bad record's dn line
    with pytest.raises(LdifError) as e:
        import_file(store, f)
    assert str(e.value) == f"bad.ldif:{line + offset}: {message}"
    assert all(rows == [] for rows in snapshot(store).values())


def test_passwords_hashed_on_import_and_foreign_schemes_refused(store: Store, tmp_path: Path) -> None:
    import_file(store, DEMO)
    f = tmp_path / "u.ldif"
    f.write_text("dn: uid=30000000-0000-4000-8000-000000000009,ou=Users,o=crm\nobjectClass: crmRecord\n"
                 "crmEntity: systemuser\ndomainname: zed\nbusinessunitid: 10000000-0000-4000-8000-000000000001\n"
                 "userPassword: {SSHA}abcdef\n", encoding="utf-8")
    with pytest.raises(LdifError, match=r"^u.ldif:6: userPassword: the scheme \{SSHA\} is not supported"):
        import_file(store, f)
    f.write_text(f.read_text().replace("{SSHA}abcdef", "{ARGON2}plain-looking"))
    with pytest.raises(LdifError, match=r"^u.ldif:6: userPassword: a \{ARGON2\} value must be an argon2 hash$"):
        import_file(store, f)
    f.write_text(f.read_text().replace("{ARGON2}plain-looking", "zed-secret"))
    assert import_file(store, f).added == 1
    with store.transaction() as s:
        zed = s.get(SystemUser, "30000000-0000-4000-8000-000000000009")
        assert zed.password_hash.startswith("$argon2id$") and verify_password(zed.password_hash, "zed-secret")
        assert (zed.roles, zed.address_book_matching, zed.tracking_option) == ([], "synchronised", "all")
    exported = export_text(store)
    assert "zed-secret" not in exported and "{SSHA}" not in exported
    assert import_file(store, f).unchanged == 1  # the plain password still matches its hash: nothing to do


SLAPCAT = """dn: dc=example,dc=com
objectClass: top
objectClass: dcObject
objectClass: organization
o: Example
dc: example
structuralObjectClass: organization
entryUUID: 0b5e4c7e-1c1a-103f-8f35-f1b2c3d4e5f6

dn: uid=jdoe,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: posixAccount
uid: jdoe
cn: Jane Doe
cn: Jane
sn: Doe
givenName: Jane
mail: jane.doe@example.com
mail: jd@example.com
telephoneNumber: +1 555 0199
userPassword:: e1NTSEF9c2VjcmV0aGFzaA==
uidNumber: 1000
jpegPhoto:: /9j/4AAQSkZJRgABAQ==
structuralObjectClass: inetOrgPerson
entryUUID: 0b5e4c7f-1c1a-103f-8f36-f1b2c3d4e5f6
creatorsName: cn=admin,dc=example,dc=com
createTimestamp: 20261130120000Z
entryCSN: 20261130120000.000000Z#000000#000#000000
modifiersName: cn=admin,dc=example,dc=com
modifyTimestamp: 20261130120000Z
"""


def test_slapcat_output_with_operational_attributes(store: Store, tmp_path: Path) -> None:
    import_file(store, DEMO)
    f = tmp_path / "slapcat.ldif"
    f.write_text(SLAPCAT, encoding="utf-8")
    result = import_file(store, f)
    assert (result.added, result.skipped) == (1, 1)
    with store.transaction() as s:
        jane = s.scalars(select(Contact).where(Contact.source_dn == "uid=jdoe,ou=people,dc=example,dc=com")).one()
        assert (jane.fullname, jane.firstname, jane.lastname) == ("Jane Doe", "Jane", "Doe")
        assert (jane.emailaddress1, jane.emailaddress2, jane.telephone1) == ("jane.doe@example.com", "jd@example.com",
                                                                           "+1 555 0199")
        assert (jane.owner_id, jane.parentcustomer_id) == ("30000000-0000-4000-8000-000000000001", None)
    assert import_file(store, f).unchanged == 1


def test_csv_entity_detected_from_its_id_column(store: Store, tmp_path: Path) -> None:
    import_file(store, DEMO)
    f = tmp_path / "accounts.csv"
    f.write_text("accountid,name,emailaddress1,address1_city,ownerid\n"
                 "40000000-0000-4000-8000-000000000001,Northwind Traders,orders@northwind.example,Seattle,"
                 "30000000-0000-4000-8000-000000000003\n,Tailspin Toys,info@tailspin.example,Reno,alice\n",
                 encoding="utf-8")
    result = import_file(store, f)
    assert (result.added, result.changed) == (1, 1)
    with store.transaction() as s:
        northwind = s.get(Account, "40000000-0000-4000-8000-000000000001")
        assert (northwind.emailaddress1, northwind.telephone1) == ("orders@northwind.example", "+1 555 0200 201")
        assert northwind.modifiedon > northwind.createdon  # columns the CSV leaves out are kept
    with pytest.raises(LdifError, match=r"^accounts.csv:2: ownerid: 'nobody' names no systemuser"):
        f.write_text("accountid,name,ownerid\n40000000-0000-4000-8000-000000000009,X,nobody\n")
        import_file(store, f)


def test_csv_of_business_units(sqlite_store: Store, tmp_path: Path) -> None:
    f = tmp_path / "units.csv"
    f.write_text("businessunitid,name,parentbusinessunitid\n"
                 "b0000000-0000-4000-8000-000000000002,Child,Root\nb0000000-0000-4000-8000-000000000001,Root,\n")
    assert import_file(sqlite_store, f, entity="businessunit").added == 2  # parents first, parent found by name
    f.write_text("name\nNo Id\n")
    with pytest.raises(LdifError, match=r"^units.csv:2: a row needs a businessunitid \(a GUID\) to be identified by$"):
        import_file(sqlite_store, f, entity="businessunit")
