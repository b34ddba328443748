"""Users, business units and roles as `abook user/bu/role` manage them, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import delete, select

from abook.errors import NotFound, UserError
from abook.passwords import hash_password, verify_password
from abook.store import Store
from abook.store.models import ENTITIES, ReadDepth, Setting, State, SystemUser
from abook.store.security import load_principal_txn
from abook.store.org import (
    add_business_unit_txn,
    add_role_txn,
    create_queue_txn,
    list_business_units_txn,
    list_queues_txn,
    list_roles_txn,
    set_role_depths_txn,
    update_queue_settings_txn,
)
from abook.store.settings import QUEUE_SETTINGS, parse_depths, parse_settings
from abook.store.users import (
    TRACKING_NUMBER_KEY,
    Credentials,
    allocate_tracking_number_txn,
    change_roles_txn,
    create_user_txn,
    credentials_for_name_txn,
    ensure_tracking_number_txn,
    list_users_txn,
    set_password_hash_txn,
    update_settings_txn,
    user_info_txn,
)


def _build(store: Store) -> Store:
    with store.transaction() as s:
        add_business_unit_txn(s, "Org")
        add_business_unit_txn(s, "Sales")
        add_business_unit_txn(s, "East", parent="sales")
        add_business_unit_txn(s, "Support")
    return store


@pytest.fixture
def org(store: Store) -> Store:
    """Org > (Sales > East, Support) on each database."""
    return _build(store)


@pytest.fixture
def sqlite_org(sqlite_store: Store) -> Store:
    """The same on SQLite only: for the tables of mistakes, whose checks run the same SQL on both."""
    return _build(sqlite_store)


def test_business_units_default_to_the_root_and_list_as_a_tree(org: Store) -> None:
    with org.transaction() as s:
        tree = [(u.name, u.level, u.parent) for u in list_business_units_txn(s)]
    assert tree == [("Org", 0, None), ("Sales", 1, "Org"), ("East", 2, "Sales"), ("Support", 1, "Org")]


@pytest.mark.parametrize(("name", "parent", "message"), [
    ("sales", None, "business unit 'sales' already exists"),
    ("West", "Nowhere", "no business unit 'Nowhere'"),
    (" ", None, "a business unit needs a name"),
])
def test_business_unit_mistakes_are_refused(sqlite_org: Store, name: str, parent: str | None, message: str) -> None:
    with pytest.raises(UserError, match=message), sqlite_org.transaction() as s:
        add_business_unit_txn(s, name, parent)


def test_users_get_consecutive_tracking_numbers_never_reused(org: Store) -> None:
    with org.transaction() as s:
        numbers = [create_user_txn(s, n, "East").tracking_number for n in ("u1", "u2", "u3")]
    assert numbers == [1, 2, 3]
    with org.transaction() as s:
        s.execute(delete(SystemUser).where(SystemUser.domainname == "u3"))
    with org.transaction() as s:
        assert create_user_txn(s, "u4", "East").tracking_number == 4
        assert s.get(Setting, TRACKING_NUMBER_KEY).value == "5"  # type: ignore[union-attr]


def test_allocation_skips_numbers_imported_users_hold(org: Store) -> None:
    with org.transaction() as s:
        bu = list_business_units_txn(s)[0].id
        s.add(SystemUser(id="u-imported", domainname="imported", business_unit_id=bu, tracking_number=2))
        s.add(SystemUser(id="u-bare", domainname="bare", business_unit_id=bu))
    with org.transaction() as s:
        assert allocate_tracking_number_txn(s) == 3  # the counter starts above the highest held number
        s.add(SystemUser(id="u-four", domainname="four", business_unit_id=bu, tracking_number=4))
        s.flush()
        assert allocate_tracking_number_txn(s) == 5
    with org.transaction() as s:
        assert ensure_tracking_number_txn(s, "u-bare") == 6
        assert ensure_tracking_number_txn(s, "u-bare") == 6  # allocated once, then kept
        assert ensure_tracking_number_txn(s, "u-imported") == 2


def test_a_rolled_back_allocation_does_not_leak_into_the_next(org: Store) -> None:
    with pytest.raises(UserError), org.transaction() as s:
        assert create_user_txn(s, "once", "East").tracking_number == 1
        raise UserError("roll back")
    with org.transaction() as s:
        assert create_user_txn(s, "once", "East").tracking_number == 1


def test_create_user_and_show_it(org: Store) -> None:
    with org.transaction() as s:
        info = create_user_txn(s, "alice", "east", firstname="Alice", lastname="Smith",
                               email="Alice@Example.com", password_hash=hash_password("pw-1"))
    assert (info.fullname, info.business_unit, info.active, info.has_password, info.roles) == (
        "Alice Smith", "East", True, True, ())
    assert (info.address_book_matching, info.local_filter_scope, info.tracking_option) == (
        "synchronised", "user", "all")
    with org.transaction() as s:
        for name in ("alice", "ALICE", "alice@example.com", info.id):
            assert user_info_txn(s, name).id == info.id
        assert [u.domainname for u in list_users_txn(s)] == ["alice"]


@pytest.mark.parametrize(("name", "bu", "email", "error", "message"), [
    ("ALICE", "East", None, UserError, "user 'ALICE' already exists"),
    ("carol", "Nowhere", None, NotFound, "no business unit 'Nowhere'"),
    ("carol", "East", "ALICE@example.com", UserError, "already the email address of user 'alice'"),
    ("carol", "East", "not-an-address", UserError, "expected an email address"),
    ("two words", "East", None, UserError, "bad user name"),
])
def test_create_user_mistakes_are_refused(sqlite_org: Store, name: str, bu: str, email: str | None,
                                          error: type, message: str) -> None:
    with sqlite_org.transaction() as s:
        create_user_txn(s, "alice", "East", email="alice@example.com")
    with pytest.raises(error, match=message), sqlite_org.transaction() as s:
        create_user_txn(s, name, bu, email=email)


def test_passwords_are_stored_as_hashes_and_hidden_from_reprs(org: Store) -> None:
    with org.transaction() as s:
        create_user_txn(s, "alice", "East", email="alice@example.com")
        set_password_hash_txn(s, "alice", hash_password("correct horse"))
    with org.transaction() as s:
        creds = credentials_for_name_txn(s, "Alice@Example.com")
        stored = s.scalar(select(SystemUser.password_hash))
    assert isinstance(creds, Credentials) and creds.active
    assert stored is not None and stored.startswith("$argon2id$") and "correct horse" not in stored
    assert verify_password(creds.password_hash, "correct horse")
    assert not verify_password(creds.password_hash, "wrong")
    assert creds.password_hash not in repr(creds) and "argon2" not in repr(creds)


def test_settings_change_what_the_principal_carries(org: Store) -> None:
    with org.transaction() as s:
        uid = create_user_txn(s, "alice", "East").id
        info = update_settings_txn(s, "alice", parse_settings([
            "address_book_matching=all", "local_filter_scope=parent_child",
            "local_filter_ldap=(department=Sales)", "local_filter_include_inactive=yes",
            "tracking_option=crm_parties", "incoming_method=router", "outgoing_method=client",
            "firstname=Alice", "email=a@example.com",
        ]))
    assert (info.tracking_option, info.incoming_method, info.outgoing_method, info.fullname, info.email) == (
        "crm_parties", "router", "client", "Alice", "a@example.com")
    with org.transaction() as s:
        p = load_principal_txn(s, uid)
    assert p is not None
    assert (p.address_book_matching, p.local_filter_scope, p.local_filter_ldap, p.local_filter_include_inactive) \
        == ("all", "parent_child", "(department=Sales)", True)
    with org.transaction() as s:
        update_settings_txn(s, "alice", parse_settings(["statecode=inactive", "local_filter_ldap="]))
    with org.transaction() as s:
        assert load_principal_txn(s, uid) is None
        assert user_info_txn(s, "alice").local_filter_ldap is None
        assert s.get(SystemUser, uid).statecode == State.inactive  # type: ignore[union-attr]


def test_roles_grant_and_revoke_and_the_widest_depth_wins(org: Store) -> None:
    with org.transaction() as s:
        uid = create_user_txn(s, "alice", "East").id
        add_role_txn(s, "rep", parse_depths(["all=user"]))
        add_role_txn(s, "Contacts Reader", parse_depths(["contact=organisation"]))
        assert change_roles_txn(s, "alice", grant=["rep", "contacts reader"]).roles == ("Contacts Reader", "rep")
    with org.transaction() as s:
        p = load_principal_txn(s, uid)
        assert p is not None and p.depth("contact") == ReadDepth.organisation and p.depth("lead") == ReadDepth.user
        assert change_roles_txn(s, "alice", revoke=["Contacts Reader"]).roles == ("rep",)
        p = load_principal_txn(s, uid)
        assert p is not None and p.depth("contact") == ReadDepth.user
        with pytest.raises(NotFound, match="no role 'boss'"):
            change_roles_txn(s, "alice", grant=["boss"])


def test_roles_are_listed_with_every_entity_and_can_be_changed(org: Store) -> None:
    with org.transaction() as s:
        add_role_txn(s, "rep", parse_depths(["contact=business_unit", "queue=user"]))
        changed = set_role_depths_txn(s, "rep", parse_depths(["queue=parent_child", "lead=user"]))
        with pytest.raises(UserError, match="role 'REP' already exists"):
            add_role_txn(s, "REP", {})
    assert dict(changed.depths) == {**{e: ReadDepth.none for e in ENTITIES}, "contact": ReadDepth.business_unit,
                                    "queue": ReadDepth.parent_child, "lead": ReadDepth.user}
    with org.transaction() as s:
        assert [(r.name, dict(r.depths)) for r in list_roles_txn(s)] == [("rep", dict(changed.depths))]


def test_an_email_shared_by_two_users_is_ambiguous(org: Store) -> None:
    with org.transaction() as s:
        bu = list_business_units_txn(s)[0].id
        s.add_all([SystemUser(id=f"u-{n}", domainname=n, business_unit_id=bu, internalemailaddress="x@example.com")
                   for n in ("a", "b")])
    with org.transaction() as s:
        with pytest.raises(UserError, match="'x@example.com' is the email address of 2 users"):
            user_info_txn(s, "x@example.com")
        assert credentials_for_name_txn(s, "x@example.com") is None
        with pytest.raises(NotFound, match="no user 'nobody'"):
            user_info_txn(s, "nobody")


@pytest.mark.parametrize(("pairs", "message"), [
    (["colour=blue"], "unknown setting 'colour': expected one of address_book_matching"),
    (["tracking_option"], "expected key=value, got 'tracking_option'"),
    (["tracking_option=sometimes"], "bad value 'sometimes' for tracking_option: expected one of all, responses, "
                                    "crm_parties, none"),
    (["incoming_method=pop"], "expected one of router, forward, client, none"),
    (["outgoing_method=forward"], "expected one of router, client, none"),
    (["address_book_matching=some"], "expected one of synchronised, all"),
    (["local_filter_scope=team"], "expected one of user, business_unit, parent_child, organisation"),
    (["local_filter_ldap=(mail=*"], "is not an RFC 4515 filter"),
    (["local_filter_include_inactive=maybe"], "expected yes or no"),
    (["statecode=gone"], "expected active or inactive"),
    (["tracking_number=7"], "tracking_number is allocated once"),
])
def test_bad_settings_are_refused_with_the_allowed_values(pairs: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(")):
        parse_settings(pairs)


def test_a_hostile_local_filter_is_refused_in_one_short_line() -> None:
    with pytest.raises(UserError) as caught:
        parse_settings(["local_filter_ldap=" + "(&" * 3000 + "(a=b)" + ")" * 3000])
    assert str(caught.value) == (
        "bad value for local_filter_ldap: '" + "(&" * 38 + "(...' is not an RFC 4515 filter such as (mail=*@example.com)")


@pytest.mark.parametrize(("pairs", "message"), [
    (["opportunity=user"], "unknown entity 'opportunity': expected one of all, account"),
    (["contact=lots"], "unknown read depth 'lots' for contact: expected one of none, user, business_unit"),
    (["contact"], "expected entity=depth"),
])
def test_bad_read_depths_are_refused(pairs: list[str], message: str) -> None:
    with pytest.raises(UserError, match=message):
        parse_depths(pairs)


def test_queues_have_mail_settings_of_their_own(org: Store) -> None:
    with org.transaction() as s:
        info = create_queue_txn(s, "Support Desk", "support", email="Help@Example.com")
        assert (info.business_unit, info.active, info.incoming_method, info.outgoing_method) == (
            "Support", True, "none", "none")
        changed = update_queue_settings_txn(s, "help@example.com", parse_settings(
            ["incoming_method=router", "outgoing_method=router", "tracking_option=responses"], QUEUE_SETTINGS))
        assert (changed.incoming_method, changed.outgoing_method, changed.tracking_option) == (
            "router", "router", "responses")
        create_queue_txn(s, "Sales Desk", "Sales")
        update_queue_settings_txn(s, "sales desk", {"statecode": State.inactive, "email": "sales@example.com"})
    with org.transaction() as s:
        assert [(q.name, q.email, q.active) for q in list_queues_txn(s)] == [
            ("Sales Desk", "sales@example.com", False), ("Support Desk", "Help@Example.com", True)]


@pytest.mark.parametrize(("action", "error", "message"), [
    (lambda s: create_queue_txn(s, "support desk", "Support"), UserError, "queue 'support desk' already exists"),
    (lambda s: create_queue_txn(s, "Other", "Support", "HELP@example.com"), UserError,
     "already the email address of queue 'Support Desk'"),
    (lambda s: create_queue_txn(s, "Other", "Nowhere"), NotFound, "no business unit 'Nowhere'"),
    (lambda s: update_queue_settings_txn(s, "Nowhere", {}), NotFound, "no queue 'Nowhere'"),
    (lambda s: parse_settings(["address_book_matching=all"], QUEUE_SETTINGS), UserError,
     "unknown setting 'address_book_matching': expected one of tracking_option, incoming_method"),
])
def test_queue_mistakes_are_refused(sqlite_org: Store, action, error: type, message: str) -> None:  # type: ignore[no-untyped-def]
    with sqlite_org.transaction() as s:
        create_queue_txn(s, "Support Desk", "Support", email="help@example.com")
    with pytest.raises(error, match=message), sqlite_org.transaction() as s:
        action(s)
