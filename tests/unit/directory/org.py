"""A small organisation built with the models directly: business units, roles, users and records."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy.orm import Session

from abook.store.models import (
    Account,
    BusinessUnit,
    Contact,
    Equipment,
    Lead,
    Queue,
    ReadDepth,
    Role,
    RolePrivilege,
    State,
    SystemUser,
    ENTITIES,
)

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)


def ids(prefix: int, n: int) -> list[str]:
    """Deterministic GUIDs, ordered as created."""
    return [f"{prefix:08x}-0000-4000-8000-{i:012x}" for i in range(1, n + 1)]


@dataclass
class Org:
    bu: dict[str, str] = field(default_factory=dict)
    users: dict[str, str] = field(default_factory=dict)
    contacts: dict[str, str] = field(default_factory=dict)
    accounts: dict[str, str] = field(default_factory=dict)
    leads: dict[str, str] = field(default_factory=dict)
    queues: dict[str, str] = field(default_factory=dict)
    equipment: dict[str, str] = field(default_factory=dict)


def role(session: Session, name: str, depths: dict[str, ReadDepth]) -> Role:
    r = Role(name=name)
    r.privileges = [RolePrivilege(entity=e, read_depth=d) for e, d in depths.items()]
    session.add(r)
    return r


# (key, first, last, fullname, email1, email2, phone, title, owner, bu, state, account)
CONTACTS = [
    ("rogers", "Roger", "Rogers", "Roger Rogers", "roger@rogers.example", None, "+1 555-0100", "CEO", "alice", "sales", 0, "acme"),
    ("jane", "Jane", "Doe", "Jane Doe", "Jane.Doe@Example.com", "jd@home.example", "+44 20 7946 0000", "Buyer", "alice", "sales", 0, "acme"),
    ("joe", "Joe", "Bloggs", "", "joe@bloggs.example", None, None, None, "bob", "saleseu", 0, None),
    ("whitt", "Walt", "Whittaker", "Walt Whittaker", "walt@whitt.example", None, "555 0101", "Head of Procurement", "bob", "saleseu", 0, "globex"),
    ("inactive", "Ina", "Active", "Ina Active", "ina@rogers.example", None, None, None, "alice", "sales", 1, None),
    ("nomail", "Norm", "Mail", "Norm Mail", None, "norm@home.example", None, None, "alice", "sales", 0, None),
    ("emptymail", "Emma", "Empty", "Emma Empty", "", None, None, None, "alice", "sales", 0, None),
    ("percent", "Per", "Cent", "100% Pure_Joy\\x", "pct@odd.example", None, None, "Star*Gazer", "carl", "support", 0, None),
    ("umlaut", "Jürgen", "Müller", "Jürgen MÜLLER", "juergen@mueller.example", None, "+49 30 555123", None, "carl", "support", 0, "globex"),
    ("jojo", "Jo", "Jonas", "Jo Jonas", "jo@jonas.example", None, None, "Engineer", "alice", "sales", 0, None),
]


def build(session: Session) -> Org:
    org = Org()
    root = BusinessUnit(id=ids(1, 4)[0], name="Org")
    sales = BusinessUnit(id=ids(1, 4)[1], name="Sales", parent_id=root.id)
    saleseu = BusinessUnit(id=ids(1, 4)[2], name="Sales EU", parent_id=sales.id)
    support = BusinessUnit(id=ids(1, 4)[3], name="Support", parent_id=root.id)
    session.add_all([root, sales, saleseu, support])
    session.flush()
    org.bu = {"root": root.id, "sales": sales.id, "saleseu": saleseu.id, "support": support.id}

    everything = role(session, "Everything", {e: ReadDepth.organisation for e in ENTITIES})
    own = role(session, "Own contacts", {"contact": ReadDepth.user, "account": ReadDepth.user})
    bu_role = role(session, "BU contacts", {"contact": ReadDepth.business_unit, "systemuser": ReadDepth.business_unit})
    pc_role = role(session, "Parent-child contacts", {"contact": ReadDepth.parent_child})
    nothing = role(session, "Nothing", {"contact": ReadDepth.none})

    uid = iter(ids(2, 10))
    users = [
        # key, first, last, bu, roles, matching, scope, local filter, state
        ("admin", "Ada", "Admin", "root", [everything], "all", "user", None, 0),
        ("alice", "Alice", "Smith", "sales", [own], "synchronised", "user", None, 0),
        ("bob", "Bob", "Jones", "saleseu", [bu_role], "all", "user", None, 0),
        ("carl", "Carl", "Root", "support", [pc_role], "all", "user", None, 0),
        ("dora", "Dora", "Nobody", "support", [nothing], "all", "user", None, 0),
        ("sync", "Syd", "Sync", "sales", [pc_role], "synchronised", "parent_child", "(title=*e*)", 0),
        ("gone", "Gone", "Away", "sales", [everything], "all", "user", None, 1),
    ]
    for key, first, last, bu, roles, matching, scope, lf, state in users:
        u = SystemUser(
            id=next(uid), domainname=f"{key}", firstname=first, lastname=last, fullname=f"{first} {last}",
            internalemailaddress=f"{key}@corp.example", business_unit_id=org.bu[bu], statecode=state,
            address_book_matching=matching, local_filter_scope=scope, local_filter_ldap=lf,
            jobtitle="Staff", createdon=T0, modifiedon=T0,
        )
        u.roles = list(roles)
        session.add(u)
        org.users[key] = u.id
    session.flush()

    aid = iter(ids(3, 5))
    for key, name, mail, owner, bu in [
        ("acme", "Acme Corp", "info@acme.example", "alice", "sales"),
        ("globex", "Globex", "hello@globex.example", "bob", "saleseu"),
        ("nomail", "Silent Ltd", None, "alice", "sales"),
    ]:
        a = Account(id=next(aid), name=name, emailaddress1=mail, owner_id=org.users[owner],
                    owningbusinessunit_id=org.bu[bu], telephone1="+1 555 0199", createdon=T0, modifiedon=T0)
        session.add(a)
        org.accounts[key] = a.id
    session.flush()

    cid = iter(ids(4, len(CONTACTS)))
    for key, first, last, full, m1, m2, phone, title, owner, bu, state, account in CONTACTS:
        c = Contact(
            id=next(cid), firstname=first, lastname=last, fullname=full, emailaddress1=m1, emailaddress2=m2,
            telephone1=phone, jobtitle=title, owner_id=org.users[owner], owningbusinessunit_id=org.bu[bu],
            statecode=State(state), parentcustomer_id=org.accounts[account] if account else None,
            createdon=T0, modifiedon=T0,
        )
        session.add(c)
        org.contacts[key] = c.id

    lid = iter(ids(5, 2))
    for key, first, last, company, mail in [("lead1", "Larry", "Lead", "Leadco", "larry@leadco.example"),
                                            ("lead2", "Lucy", "Rogers", None, "lucy@example.com")]:
        lead = Lead(id=next(lid), firstname=first, lastname=last, fullname=f"{first} {last}", companyname=company,
                    emailaddress1=mail, owner_id=org.users["alice"], owningbusinessunit_id=org.bu["sales"],
                    createdon=T0, modifiedon=T0)
        session.add(lead)
        org.leads[key] = lead.id
    q = Queue(id=ids(6, 1)[0], name="Support Queue", emailaddress="support@corp.example",
              business_unit_id=org.bu["support"], createdon=T0, modifiedon=T0)
    e = Equipment(id=ids(7, 1)[0], name="Room Rogers", emailaddress="room@corp.example", site="HQ",
                  business_unit_id=org.bu["root"], createdon=T0, modifiedon=T0)
    session.add_all([q, e])
    org.queues["support"], org.equipment["room"] = q.id, e.id
    session.flush()
    return org
