"""ldif/demo.ldif holds what it promises: every visibility rule of SPEC section 2 has a record to show it."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from abook.store import Store
from abook.store.models import (Account, BusinessUnit, Contact, Equipment, Lead, Queue, ReadDepth, Role,
                                SystemUser)
from abook.transfer import import_file
from tests.unit.transfer.conftest import DEMO


@pytest.fixture
def demo(sqlite_store: Store) -> Store:
    import_file(sqlite_store, DEMO)
    return sqlite_store


def test_the_organisation_has_every_shape_the_rules_need(demo: Store) -> None:
    with demo.transaction() as s:
        units = {u.id: u for u in s.scalars(select(BusinessUnit))}

        def depth(unit: BusinessUnit) -> int:
            return 1 if unit.parent_id is None else 1 + depth(units[unit.parent_id])

        assert max(depth(u) for u in units.values()) == 3
        depths = {p.read_depth for r in s.scalars(select(Role)) for p in r.privileges}
        assert depths == set(ReadDepth)  # none, user, business unit, parent-child, organisation
        users = {u.domainname: u for u in s.scalars(select(SystemUser))}
        assert users["erin"].statecode == 1
        assert {u.address_book_matching for u in users.values()} == {"all", "synchronised"}
        assert users["dave"].local_filter_ldap == "(co=Germany)"
        assert len(users["gina"].roles) == 2
        for model, email in ((Account, Account.emailaddress1), (Contact, Contact.emailaddress1),
                             (Lead, Lead.emailaddress1), (Equipment, Equipment.emailaddress)):
            assert s.scalar(select(func.count()).select_from(model).where(email.is_(None))) >= 1
        for model in (Account, Contact, Lead, Queue):
            assert s.scalar(select(func.count()).select_from(model).where(model.statecode == 1)) >= 1
        assert {q.emailaddress for q in s.scalars(select(Queue).where(Queue.statecode == 0))} == {
            "sales@example.com", "support@example.com"}
        owners_units = {c.owningbusinessunit_id for c in s.scalars(select(Contact))}
        assert len(owners_units) == 5  # contacts owned in every unit


#: user -> the names each book shows them (active records with a primary email that the roles reach)
EXPECTED = {
    "admin": ({"Northwind Traders", "Southridge Video", "Contoso Pharmaceuticals", "Fabrikam Support Ltd"},
              {"Liu Wong", "Elizabeth Brown", "Karl Jablonski", "Helen Bennett"}, {"Sales", "Support"}),
    "alice": ({"Northwind Traders", "Southridge Video", "Contoso Pharmaceuticals", "Fabrikam Support Ltd"},
              {"Liu Wong", "Elizabeth Brown", "Karl Jablonski", "Helen Bennett"}, {"Sales", "Support"}),
    "bob": ({"Northwind Traders"}, {"Liu Wong"}, set()),
    "carol": ({"Southridge Video"}, {"Elizabeth Brown"}, set()),
    "dave": ({"Northwind Traders", "Southridge Video", "Contoso Pharmaceuticals", "Fabrikam Support Ltd"},
             set(), {"Sales", "Support"}),
    "frank": ({"Northwind Traders", "Southridge Video", "Contoso Pharmaceuticals"},
              {"Liu Wong", "Elizabeth Brown", "Karl Jablonski"}, {"Sales"}),
    "gina": ({"Fabrikam Support Ltd"}, {"Helen Bennett"}, {"Support"}),
}


def test_each_demo_user_sees_what_the_readme_says(demo: Store) -> None:
    from abook.store.security import load_principal_txn, readable

    with demo.transaction() as s:
        ids = {u.domainname: u.id for u in s.scalars(select(SystemUser))}
        assert load_principal_txn(s, ids["erin"]) is None  # inactive: cannot bind
        for user, (accounts, leads, queues) in EXPECTED.items():
            p = load_principal_txn(s, ids[user])
            assert p is not None
            seen = []
            for model, name, email in ((Account, Account.name, Account.emailaddress1),
                                       (Lead, Lead.fullname, Lead.emailaddress1),
                                       (Queue, Queue.name, Queue.emailaddress)):
                entity = model.__tablename__
                seen.append(set(s.scalars(select(name).where(readable(p, entity), model.statecode == 0,
                                                             email.is_not(None)))))
            assert tuple(seen) == (accounts, leads, queues), user
