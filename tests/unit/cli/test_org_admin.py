"""The first deployment's organisation: reshaping the business-unit tree (rename, move, delete), the CRM's
standard roles on a fresh store, warnings for users without a role, and what a user's Contacts book shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.store import Store, make_engine
from abook.store.models import Contact, Queue, SystemUser


def tree(abook) -> list[str]:  # type: ignore[no-untyped-def]
    return [line.split("  (")[0] for line in abook("bu", "list").out.splitlines()]


def test_two_peer_units_after_the_first_became_the_root(abook) -> None:  # type: ignore[no-untyped-def]
    """The review's path: `bu add Sales`, `bu add Service` made Service a child of Sales, with no way back."""
    assert "as the organisation's root (units added without --parent go under it)" in abook("bu", "add", "Sales").out
    assert abook("bu", "add", "Service").out.endswith("under Sales\n")
    abook("bu", "add", "Acme")
    r = abook("bu", "move", "Acme", "--root")
    assert (r.rc, r.out) == (0, "Acme is now the organisation's root; Sales went under it\n")
    r = abook("bu", "move", "Service", "--parent", "Acme")
    assert (r.rc, r.out) == (0, "moved business unit Service under Acme\n")
    assert tree(abook) == ["Acme", "  Sales", "  Service"]
    r = abook("bu", "rename", "service", "Customer Service")
    assert r.rc == 0 and r.out.startswith("renamed business unit Service to Customer Service (")
    assert tree(abook) == ["Acme", "  Customer Service", "  Sales"]


@pytest.mark.parametrize(("argv", "message"), [
    (["bu", "move", "Sales", "--parent", "East"], "cannot move Sales under East, which is below it: the tree would loop"),
    (["bu", "move", "Sales", "--parent", "Sales"], "cannot move Sales under itself"),
    (["bu", "move", "Org", "--parent", "Sales"], "the tree would loop"),
    (["bu", "move", "Org", "--root"], "Org is already a root business unit"),
    (["bu", "delete", "Org", "--to", "Sales"], "Org is the organisation's root and cannot be deleted"),
    (["bu", "delete", "Sales"], "Sales holds 1 unit below it: give --to UNIT"),
    (["bu", "delete", "Sales", "--to", "East"], "cannot move what Sales holds to East, which is below it"),
    (["bu", "rename", "Sales", "east"], "business unit 'East' already exists"),
    (["bu", "delete", "Nowhere"], "no business unit 'Nowhere'"),
])
def test_reshaping_mistakes_are_refused(org, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    r = org(*argv)
    assert (r.rc, r.out) == (2, "") and message in r.err, r.err
    assert tree(org) == ["Org", "  Sales", "    East"]


def test_delete_moves_everything_the_unit_holds(org, config: Path) -> None:  # type: ignore[no-untyped-def]
    org("bu", "add", "West", "--parent", "Sales")
    org("user", "add", "wes", "--bu", "West", "--role", "rep")
    org("queue", "add", "West Desk", "--bu", "West", "--email", "west@example.com")
    org("import", str(_contacts(config.parent, owner="wes")))
    r = org("bu", "delete", "West")
    assert r.rc == 2 and "West holds 1 user, 1 queue, 2 contacts: give --to UNIT" in r.err
    r = org("bu", "delete", "West", "--to", "East")
    assert (r.rc, r.out) == (0, "deleted business unit West; moved 1 user, 1 queue, 2 contacts to East\n")
    assert tree(org) == ["Org", "  Sales", "    East"]
    assert "East" in org("user", "show", "wes").out
    store = Store(make_engine(f"sqlite:///{config.parent / 'abook.sqlite3'}"))
    try:
        with store.transaction() as s:
            east = {u.business_unit_id for u in s.query(SystemUser).filter_by(domainname="wes")}
            assert {q.business_unit_id for q in s.query(Queue)} == east
            assert {c.owningbusinessunit_id for c in s.query(Contact)} == east
    finally:
        store.dispose()
    r = org("bu", "delete", "East", "--to", "Org")
    assert r.rc == 0 and "deleted business unit East; moved 1 user, 1 queue, 2 contacts to Org" in r.out
    org("bu", "add", "Empty")
    assert org("bu", "delete", "Empty").out == "deleted business unit Empty\n"


def _contacts(where: Path, owner: str) -> Path:
    f = where / "contacts.csv"
    f.write_text(f"firstname,lastname,emailaddress1,ownerid\nJohn,Johnson,john@example.com,{owner}\n"
                 f"Joanna,Muller,joanna@example.com,{owner}\n")
    return f


def test_init_offers_the_standard_roles(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from abook.cli import main

    config = tmp_path / "fresh.toml"
    config.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "fresh.sqlite3"}"\n')
    assert main(["init", "--standard-roles", "-c", str(config)]) == 0
    assert capsys.readouterr().out.splitlines()[1].startswith("added 13 standard roles: CEO-Business Manager, ")
    assert main(["role", "list", "-c", str(config)]) == 0
    assert "System Administrator" in capsys.readouterr().out


def test_standard_roles_on_a_fresh_store(abook) -> None:  # type: ignore[no-untyped-def]
    r = abook("role", "list")
    assert r.out.startswith("no roles yet: `abook role add-standard` adds the CRM's standard roles")
    r = abook("role", "add-standard")
    assert r.rc == 0 and r.out.startswith("added 13 standard roles: CEO-Business Manager, CSR Manager, ")
    rows = {line.split("  ")[0]: line.split()[-6:] for line in abook("role", "list").out.splitlines()[1:]}
    assert rows["System Administrator"] == ["organisation"] * 6
    assert rows["Salesperson"] == ["organisation", "organisation", "user", "organisation", "organisation",
                                   "organisation"]
    abook("role", "set", "Salesperson", "--read", "lead=business_unit")
    r = abook("role", "add-standard")
    assert r.out.startswith("already there, left as they are: CEO-Business Manager, ")
    assert "business_unit" in abook("role", "list").out  # the changed role was left alone


def test_a_user_without_a_role_is_warned_about(org) -> None:  # type: ignore[no-untyped-def]
    r = org("user", "add", "nora", "--bu", "East")
    assert r.rc == 0
    assert r.err == ("warning: nora has no security role: they can bind but see every address book empty; grant "
                     "one with `abook user roles nora --grant ROLE` (`abook role list`; `abook role add-standard` "
                     "adds the CRM's standard roles)\n")
    r = org("user", "add", "olga", "--bu", "East", "--role", "rep", "--role", "MANAGER")
    assert r.rc == 0 and r.err == "" and r.out.endswith("; roles manager, rep\n")
    org("user", "add", "pia", "--bu", "East")
    r = org("user", "list")
    assert [line.split()[-1] for line in r.out.splitlines()[1:]] == ["(none)", "rep", "(none)"]
    assert r.err.startswith("warning: 2 users have no security role (nora, pia): they can bind but see every "
                            "address book empty")
    assert "has no security role" in org("user", "show", "nora").err
    assert org("user", "roles", "nora", "--grant", "rep").rc == 0
    assert org("user", "roles", "pia", "--grant", "rep").rc == 0
    assert org("user", "list").err == ""
    r = org("user", "add", "quinn", "--bu", "East", "--role", "boss")
    assert r.rc == 2 and "no role 'boss'" in r.err
    assert "quinn" not in org("user", "list").out


def test_the_contacts_book_settings_are_explained_where_the_admin_looks(org) -> None:  # type: ignore[no-untyped-def]
    org("user", "add", "olga", "--bu", "East", "--role", "rep")
    note = org("user", "show", "olga").out.split("\n\n")[1]
    assert note == ("Contacts book: only the active contacts they own, even where the roles allow more "
                    "(address_book_matching=synchronised). To show every contact the roles allow: "
                    "abook user set olga address_book_matching=all\n")
    org("user", "set", "olga", "local_filter_scope=business_unit", "local_filter_ldap=(co=Germany)")
    assert "only the active contacts their business unit owns, matching (co=Germany)," in org("user", "show", "olga").out
    org("user", "set", "olga", "address_book_matching=all")
    assert "Contacts book: every contact the roles allow (address_book_matching=all)." in org("user", "show", "olga").out


def test_help_says_what_a_new_user_sees(abook, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    from abook.cli import main

    for argv in (["user", "add", "--help"], ["user", "set", "--help"]):
        with pytest.raises(SystemExit):
            main(argv)
        out = " ".join(capsys.readouterr().out.split())
        assert "address_book_matching=synchronised|all (default synchronised)" in out
        assert "local_filter_scope=user|business_unit|parent_child|organisation (default user)" in out
    with pytest.raises(SystemExit):
        main(["user", "add", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "A user without a role can bind but sees every book empty" in out
    assert "a new user's Contacts book shows only the active contacts they own, even with an organisation-wide role" in out


def test_empty_listings_say_so(abook) -> None:  # type: ignore[no-untyped-def]
    assert abook("bu", "list").out == "no business units yet: `abook bu add NAME` adds the first, the organisation's root\n"
    assert abook("user", "list").out == "no users yet: `abook user add NAME --bu UNIT` adds one\n"
    assert abook("queue", "list").out == "no queues\n"
    assert abook("role", "list").out.startswith("no roles yet")
    assert abook("outgoing", "stuck").out == "no emails in sending\n"


def test_the_crm_spelling_organization_is_understood(org) -> None:  # type: ignore[no-untyped-def]
    """The CRM's UI says "Organization"; abook used to refuse it with "unknown read depth"."""
    r = org("role", "add", "Org Reader", "--read", "all=Organization")
    assert r.rc == 0 and "contact=organisation" in r.out, r.err
    org("user", "add", "olga", "--bu", "East", "--role", "Org Reader")
    assert org("user", "set", "olga", "local_filter_scope=organization").rc == 0
    assert "only the active contacts anyone owns" in org("user", "show", "olga").out
