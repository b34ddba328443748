"""How fast the visibility predicate answers on a big organisation (store/security.py).

    .venv/bin/python bench/security_visibility.py [--url URL] [--contacts 100000]

Builds 1 root + 10 divisions x 5 teams (61 business units), 500 users spread over the teams and N
contacts owned at random, then times, per read depth: loading the principal, counting the listed
contacts, and fetching the first page of 100 (ORDER BY id). Prints median milliseconds of 5 runs.
Default URL: a SQLite file in a temporary directory.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import func, insert, select, text

from abook.store import Store, make_engine, schema
from abook.store.models import BusinessUnit, Contact, ReadDepth, Role, RolePrivilege, SystemUser, user_roles
from abook.store.security import listed, load_principal_txn


def build(store: Store, contacts: int) -> dict[str, str]:
    rng = random.Random(7)
    units = [{"id": "bu-root", "name": "root", "parent_id": None}]
    teams = []
    for d in range(10):
        units.append({"id": f"bu-d{d}", "name": f"division {d}", "parent_id": "bu-root"})
        for t in range(5):
            units.append({"id": f"bu-d{d}t{t}", "name": f"team {d}.{t}", "parent_id": f"bu-d{d}"})
            teams.append(f"bu-d{d}t{t}")
    users = [{"id": f"u{i:04d}", "domainname": f"user{i}", "business_unit_id": teams[i % len(teams)]}
             for i in range(500)]
    users.append({"id": "u-div", "domainname": "division-head", "business_unit_id": "bu-d3"})
    bu_of = {u["id"]: u["business_unit_id"] for u in users}
    with store.transaction() as s:
        s.execute(insert(BusinessUnit), units)
        s.execute(insert(SystemUser), users)
        for depth in ReadDepth:
            s.add(Role(id=f"r-{depth.name}", name=depth.name,
                       privileges=[RolePrivilege(entity="contact", read_depth=int(depth))]))
    batch = []
    for i in range(contacts):
        owner = users[rng.randrange(500)]["id"]
        batch.append({"id": f"c{i:07d}", "lastname": f"Contact {i}", "owner_id": owner,
                      "owningbusinessunit_id": bu_of[owner], "statecode": 0 if i % 20 else 1,
                      "emailaddress1": f"c{i}@example.com" if i % 10 else None})
        if len(batch) == 10_000:
            with store.transaction() as s:
                s.execute(insert(Contact), batch)
            batch = []
    if batch:
        with store.transaction() as s:
            s.execute(insert(Contact), batch)
    grants = {"user": "u0007", "business_unit": "u0008", "parent_child": "u-div", "organisation": "u0009"}
    with store.transaction() as s:
        s.execute(insert(user_roles), [{"systemuser_id": uid, "role_id": f"r-{depth}"} for depth, uid in grants.items()])
    with store.engine.begin() as conn:  # statistics, as autovacuum / a periodic ANALYZE would leave them
        conn.execute(text("ANALYZE"))
    return grants


def median_ms(fn, runs: int = 5) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--contacts", type=int, default=100_000)
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="abook-bench-")
    store = Store(make_engine(args.url or f"sqlite:///{Path(tmp) / 'bench.sqlite3'}"))
    schema.upgrade(store.engine)
    start = time.perf_counter()
    grants = build(store, args.contacts)
    print(f"{store.dialect}: built {args.contacts} contacts in {time.perf_counter() - start:.1f}s")
    print(f"{'depth':<14} {'principal':>10} {'count':>9} {'rows':>7} {'page of 100':>12}")
    for depth, uid in grants.items():
        def principal():  # type: ignore[no-untyped-def]
            with store.transaction() as s:
                return load_principal_txn(s, uid)

        p = principal()
        where = listed(p, "contact")
        with store.transaction() as s:
            rows = s.scalar(select(func.count()).select_from(Contact).where(where))

        def count() -> None:
            with store.transaction() as s:
                s.scalar(select(func.count()).select_from(Contact).where(where))

        def page() -> None:
            with store.transaction() as s:
                list(s.scalars(select(Contact.id).where(where).order_by(Contact.id).limit(100)))

        print(f"{depth:<14} {median_ms(principal):>8.1f}ms {median_ms(count):>7.1f}ms {rows:>7} "
              f"{median_ms(page):>10.1f}ms")
    store.dispose()


if __name__ == "__main__":
    main()
