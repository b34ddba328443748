"""How much a sync of linked, unchanged contacts costs, and that a sync of a few changes writes only those.

For each size N (default 1,000, 10,000, 50,000): N contacts owned by one user in a fresh SQLite store,
an in-memory mailbox (so the figures are abook's own work: no network, no server), then

1. the first sync (N creates in the mailbox), timed;
2. a sync with nothing changed: abook's CPU time (process time of this single-threaded run), wall time,
   and the mailbox calls made (expected: reads only);
3. 1% of the contacts changed in the CRM: the sync's writes, which must be exactly that 1%;
4. the same after a lost sync token (a full listing of the mailbox).

Run it under the shared lock: ``flock /tmp/abook-bench.lock .venv/bin/python bench/sync_bench.py``.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import insert, update  # noqa: E402
from twisted.internet import defer  # noqa: E402

from abook.mailbox.pim.memory import MemoryMailbox  # noqa: E402
from abook.store import Store, make_engine, models, schema  # noqa: E402
from abook.sync.engine import SyncEngine  # noqa: E402
from abook.sync.model import Policy  # noqa: E402
from abook.threads import SyncRunner  # noqa: E402


def _run(engine: SyncEngine, user: str, box: MemoryMailbox):  # type: ignore[no-untyped-def]
    out: list = []
    defer.ensureDeferred(engine.sync(user, box, "contact")).addBoth(out.append)
    if hasattr(out[0], "raiseException"):
        out[0].raiseException()
    return out[0]


def _timed(engine: SyncEngine, user: str, box: MemoryMailbox):  # type: ignore[no-untyped-def]
    box.calls.clear()
    wall, cpu = time.perf_counter(), time.process_time()
    report = _run(engine, user, box)
    return report, time.perf_counter() - wall, time.process_time() - cpu, list(box.calls)


def one(n: int, directory: Path) -> dict:
    store = Store(make_engine(f"sqlite:///{directory / f'sync-{n}.sqlite3'}"))
    schema.upgrade(store.engine)
    now = datetime.now(timezone.utc)
    with store.transaction() as s:
        unit = models.BusinessUnit(name="Unit")
        s.add(unit)
        s.flush()
        role = models.Role(name="Own")
        role.privileges = [models.RolePrivilege(entity="contact", read_depth=int(models.ReadDepth.user))]
        user = models.SystemUser(domainname="paul", business_unit_id=unit.id, statecode=0, sync_enabled=True)
        user.roles.append(role)
        s.add(user)
        s.flush()
        user_id, unit_id = user.id, unit.id
        rows = [dict(id=str(uuid.uuid4()), firstname=f"First{i}", lastname=f"Last{i}", fullname=f"First{i} Last{i}",
                     emailaddress1=f"c{i}@example.org", telephone1=f"+1 555 {i:07d}", jobtitle="Buyer",
                     address1_city="Berlin", owner_id=user_id, owningbusinessunit_id=unit_id, statecode=0,
                     createdon=now, modifiedon=now) for i in range(n)]
        for i in range(0, n, 5000):
            s.execute(insert(models.Contact), rows[i:i + 5000])
    box = MemoryMailbox()
    engine = SyncEngine(store, SyncRunner(), {"contact": Policy("contact")})
    first, first_wall, first_cpu, _ = _timed(engine, user_id, box)
    assert first.counts == {"create_mailbox": n}, first.counts
    unchanged, wall, cpu, calls = _timed(engine, user_id, box)
    assert unchanged.writes == 0 and box.writes() == [], (unchanged.counts, calls)
    changed_ids = [r["id"] for r in rows[: max(n // 100, 1)]]
    with store.transaction() as s:
        s.execute(update(models.Contact).where(models.Contact.id.in_(changed_ids))
                  .values(jobtitle="Head buyer", modifiedon=datetime.now(timezone.utc)))
    one_pct, pct_wall, pct_cpu, pct_calls = _timed(engine, user_id, box)
    writes = [c for c in pct_calls if c in ("create", "update", "delete")]
    assert writes == ["update"] * len(changed_ids), (one_pct.counts, len(writes))
    box.forget_tokens()
    full, full_wall, full_cpu, full_calls = _timed(engine, user_id, box)
    assert full.writes == 0 and not [c for c in full_calls if c in ("create", "update", "delete")]
    store.dispose()
    return {"n": n, "first_wall": first_wall, "first_cpu": first_cpu, "wall": wall, "cpu": cpu,
            "calls": sorted(set(calls)), "changed": len(changed_ids), "writes": len(writes), "pct_cpu": pct_cpu,
            "pct_wall": pct_wall, "full_cpu": full_cpu, "full_wall": full_wall}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", default="1000,10000,50000")
    args = p.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| linked | first sync s | unchanged: CPU s | wall s | mailbox calls | 1% changed: writes | CPU s "
          "| lost token: CPU s |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="abook-sync-bench-") as d:
        for n in (int(x) for x in args.sizes.split(",")):
            r = one(n, Path(d))
            print(f"| {n:,} | {r['first_wall']:.1f} | {r['cpu']:.3f} | {r['wall']:.3f} | {', '.join(r['calls'])} "
                  f"| {r['writes']} of {r['changed']} | {r['pct_cpu']:.3f} | {r['full_cpu']:.3f} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
