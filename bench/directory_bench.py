"""Time IDirectory searches in-process (SQL + row conversion, no LDAP wire), at N contacts.

    .venv/bin/python bench/directory_bench.py -n 100000 [--db sqlite:///tmp/x.db | --pg] [-d 5]

The data is the LDAP benchmark's synthetic directory (``bench/gen_directory.py``), loaded as
contacts (cn -> fullname, givenName, sn, mail -> emailaddress1/2, telephoneNumber, title, o -> a parent
account) owned by one user with organisation-wide read access. Workloads follow ``ldapload.py``:
contains (Thunderbird, sizeLimit 100, all attributes), typeahead (prefix, sizeLimit 50, cn mail), mail
(exact lookup), a paged dump (page 500, all attributes) and vlv: windows of 50 of the Contacts book
sorted by cn as Roundcube browses it (byOffset at random offsets, half with the server's contentCount and
half with 0), and type-to-find windows (greaterThanOrEqual a random 2-letter prefix), as Outlook sends. Searches run one after another on this
thread (SyncRunner) and are timed in CPU time of that thread (the machine is shared), so the rates are
per core: searches/s = 1 / CPU seconds per search.
"""

from __future__ import annotations

import argparse
import base64
import importlib.util
import io
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ldaptor import ldapfilter  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from abook.directory.api import ONE_LEVEL, SUBTREE, SearchSpec, SortKey, VlvRequest  # noqa: E402
from abook.directory.search import StoreDirectory  # noqa: E402
from abook.directory.tree import Tree  # noqa: E402
from abook.store import Store, make_engine, schema, security  # noqa: E402
from abook.store.models import (  # noqa: E402
    ENTITIES,
    Account,
    BusinessUnit,
    Contact,
    ReadDepth,
    Role,
    RolePrivilege,
    SystemUser,
    new_id,
)

BENCH = REPO / "bench"


def ldif_entries(text: str) -> Iterator[dict[str, list[str]]]:
    for block in text.split("\n\n"):
        entry: dict[str, list[str]] = {}
        lines: list[str] = []
        for line in block.split("\n"):
            if line.startswith(" ") and lines:
                lines[-1] += line[1:]
            elif line:
                lines.append(line)
        for line in lines:
            if line.startswith("#"):
                continue
            attr, _, value = line.partition(":")
            if value.startswith(":"):
                value = base64.b64decode(value[1:].strip()).decode("utf-8")
            else:
                value = value.strip()
            entry.setdefault(attr.lower(), []).append(value)
        if "dn" in entry:
            yield entry


def generate(n: int) -> str:
    spec = importlib.util.spec_from_file_location("gen_directory", BENCH / "gen_directory.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = io.StringIO()
    mod.generate(n, "o=crm", 1, out)
    return out.getvalue()


def people_of(n: int) -> list[dict[str, list[str]]]:
    return [e for e in ldif_entries(generate(n)) if "inetorgperson" in [c.lower() for c in e.get("objectclass", [])]]


def load(store: Store, n: int) -> tuple[str, list[dict[str, list[str]]]]:
    people = people_of(n)
    with store.transaction() as s:
        existing = s.scalar(select(SystemUser.id).where(SystemUser.domainname == "admin"))
        if existing is not None:  # --db naming a store this script filled before
            return existing, people
        bu = BusinessUnit(name="Org")
        s.add(bu)
        s.flush()
        role = Role(name="Everything")
        role.privileges = [RolePrivilege(entity=e, read_depth=ReadDepth.organisation) for e in ENTITIES]
        user = SystemUser(domainname="admin", fullname="Ada Admin", internalemailaddress="admin@corp.example",
                          business_unit_id=bu.id, address_book_matching="all")
        user.roles = [role]
        s.add(user)
        s.flush()
        user_id, bu_id = user.id, bu.id
        accounts: dict[str, str] = {}
        for p in people:
            for o in p.get("o", []):
                accounts.setdefault(o, new_id())
        s.execute(insert(Account), [
            {"id": i, "name": name, "owner_id": user_id, "owningbusinessunit_id": bu_id}
            for name, i in accounts.items()
        ])
        rows = []
        for p in people:
            mails = p.get("mail", [])
            rows.append({
                "id": new_id(), "fullname": p["cn"][0], "firstname": (p.get("givenname") or [None])[0],
                "lastname": (p.get("sn") or [None])[0], "emailaddress1": mails[0] if mails else None,
                "emailaddress2": mails[1] if len(mails) > 1 else None,
                "telephone1": (p.get("telephonenumber") or [None])[0], "jobtitle": (p.get("title") or [None])[0],
                "parentcustomer_id": accounts[p["o"][0]] if p.get("o") else None,
                "owner_id": user_id, "owningbusinessunit_id": bu_id,
            })
        for i in range(0, len(rows), 5000):
            s.execute(insert(Contact), rows[i:i + 5000])
    return user_id, people


def timed(directory: StoreDirectory, specs: list[SearchSpec], seconds: float) -> dict[str, Any]:
    """Latency is CPU time of this thread per search (the machine is shared: wall time is noisy)."""
    lat: list[float] = []
    entries = 0
    start = time.perf_counter()
    deadline = start + seconds
    i = 0
    while time.perf_counter() < deadline:
        spec = specs[i % len(specs)]
        i += 1
        out: list[Any] = []
        t = time.thread_time()
        d = directory.search(spec, out.append)
        lat.append(time.thread_time() - t)
        d.addErrback(lambda f: f.printTraceback())
        entries += len(out)
    lat.sort()
    total = sum(lat)
    wall = time.perf_counter() - start
    return {"searches": len(lat), "per_s": len(lat) / total, "wall_per_s": len(lat) / wall,
            "entries_per_search": entries / len(lat),
            "p50_ms": 1000 * lat[len(lat) // 2], "p99_ms": 1000 * lat[int(len(lat) * 0.99)]}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=10000)
    ap.add_argument("--db", help="store URL (default: a SQLite file in a temp dir); reused if already loaded")
    ap.add_argument("-d", "--seconds", type=float, default=5.0)
    ap.add_argument("--workloads", default="contains,typeahead,mail,dump,vlv")
    ap.add_argument("--profile", help="profile one workload with cProfile")
    ap.add_argument("--sort", default="cumulative", help="profile sort order")
    args = ap.parse_args(argv)
    url = args.db or f"sqlite:///{tempfile.mkdtemp(prefix='abook-bench-')}/bench.sqlite3"
    store = Store(make_engine(url))
    schema.upgrade(store.engine)
    t = time.perf_counter()
    user_id, people = load(store, args.n)
    print(f"loaded {len(people)} contacts in {time.perf_counter() - t:.1f} s ({store.dialect})")
    with store.transaction() as s:
        principal = security.load_principal_txn(s, user_id)
    directory = StoreDirectory(store, Tree("o=crm"))
    rng = random.Random(7)

    def spec(flt: str, **kw: Any) -> SearchSpec:
        return SearchSpec(base="o=crm", scope=SUBTREE, filter=ldapfilter.parseFilter(flt), principal=principal, **kw)

    def values() -> list[str]:
        p = rng.choice(people)
        return [v for a in ("cn", "sn", "givenname", "mail") for v in p.get(a, [])]

    def esc(v: str) -> str:
        return v.replace("\\", "\\5c").replace("*", "\\2a").replace("(", "\\28").replace(")", "\\29")

    def fragment() -> str:  # as ldapload.py: 3 letters from a value of 3 or more
        v = rng.choice([v for v in values() if len(v) >= 3] or ["abc"]).lower()
        i = rng.randrange(0, max(1, len(v) - 2))
        return esc(v[i:i + 3])

    def prefix() -> str:
        return esc(rng.choice(values()).lower()[: rng.choice((2, 3))])

    mails = [m for p in people for m in p.get("mail", [])[:1]]
    workloads = {
        "contains": [spec(f"(|(cn=*{f}*)(mail=*{f}*)(givenName=*{f}*)(sn=*{f}*))", size_limit=100)
                     for f in (fragment() for _ in range(1000))],
        "typeahead": [spec(f"(|(cn={p}*)(mail={p}*)(sn={p}*)(givenName={p}*))", size_limit=50,
                           attributes=("cn", "mail")) for p in (prefix() for _ in range(1000))],
        "mail": [spec(f"(mail={esc(m)})", attributes=("cn", "sn", "givenName", "mail", "telephoneNumber", "o",
                                                     "title")) for m in rng.sample(mails, min(1000, len(mails)))],
    }
    contacts = len(people)

    def window() -> SearchSpec:
        if rng.random() < 0.25:  # type-to-find
            vlv = VlvRequest(0, 49, assertion=rng.choice(values()).lower()[:2])
        else:
            vlv = VlvRequest(0, 49, offset=rng.randint(1, contacts), content_count=rng.choice((0, contacts)))
        return SearchSpec(base="ou=Contacts,o=crm", scope=ONE_LEVEL, filter=ldapfilter.parseFilter("(objectClass=*)"),
                          principal=principal, attributes=("cn", "mail"), sort=(SortKey("cn"),), vlv=vlv)

    workloads["vlv"] = [window() for _ in range(1000)]
    if args.profile:
        import cProfile
        import pstats
        cProfile.runctx("timed(directory, workloads[args.profile], args.seconds)", globals(), locals(), "/tmp/dirprof")
        pstats.Stats("/tmp/dirprof").sort_stats(args.sort).print_stats(35)
        return
    wall_note = ", with the database server's time" if store.dialect != "sqlite" else ", machine shared"
    for name in args.workloads.split(","):
        if name == "dump":
            best = None
            for _ in range(3):
                t = time.thread_time()
                cookie, n = b"", 0
                while True:
                    out: list[Any] = []
                    d = directory.search(spec("(objectClass=*)", page_size=500, cookie=cookie), out.append)
                    done: list[Any] = []
                    d.addCallback(done.append)
                    n += len(out)
                    cookie = done[0].cookie
                    if not cookie:
                        break
                el = time.thread_time() - t
                best = el if best is None else min(best, el)
            print(f"dump: {n} entries, best {best:.2f} CPU s ({n / best:.0f} entries/s)")
            continue
        r = timed(directory, workloads[name], args.seconds)
        print(f"{name}: {r['per_s']:.0f}/s per core, {r['entries_per_search']:.1f} entries/search, "
              f"CPU p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms ({r['searches']} searches; "
              f"{r['wall_per_s']:.0f}/s wall{wall_note})")


if __name__ == "__main__":
    main()
