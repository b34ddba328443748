"""Tracking throughput: 10,000 generated messages against a store of 1,000,000 addresses, on SQLite.

    .venv/bin/python bench/track_bench.py                      # 1,000,000 addresses, 10,000 messages
    .venv/bin/python bench/track_bench.py --addresses 10000    # the same messages, a 100x smaller store
    .venv/bin/python bench/track_bench.py --batch 1            # one message per transaction only
    .venv/bin/python bench/track_bench.py --router --engine-too --store-cache /tmp/trackcache
                                   # the router's commit_batch_txn too; the populated store kept for next time

The store gets contacts, leads and accounts (bulk Core executemany) holding ``--addresses`` addresses, 50
users and 1,000 CRM emails with tracking tokens. Messages are generated deterministically (``--seed``):
1-20 recipients each (a mix of store addresses, users and strangers), text bodies of 1-20 kB, 20% with
an attachment of 10-200 kB, 10% HTML; 30% are replies carrying a tracking token or an In-Reply-To that
names an earlier message. Generation is outside the timings. Each message runs ``track_txn`` in its own
transaction (batch 1, as a router saving its cursor per message), then ``track_many_txn`` with 100
messages per transaction (one address resolution query per batch).

With ``--router`` each transaction is the router's ``commit_batch_txn`` for one mailbox (one owner per
batch), as the daemon runs it. The freshly loaded store is written back to disk (``os.sync``) before
timing, so the first checkpoints do not write back the whole load.

Printed: messages/s (wall clock and CPU time; and the best 1,000-message window), the time per message
of parsing, address resolution (the UNION ALL query, one per batch), the batched INSERTs and the commit,
the outcome counts and the load average. Address resolution cost independent of store size shows as equal resolution times for
``--addresses 1000000`` and ``--addresses 10000``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import pickle
import random
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import event, func, insert, select  # noqa: E402

from abook.config.model import TrackingConfig  # noqa: E402
from abook.config.routing import RouterConfig  # noqa: E402
from abook.routing import batch as router_batch  # noqa: E402
from abook.store import mailboxes as router_state  # noqa: E402
from abook.routing.batch import BatchSpec, Fetched, commit_batch_txn  # noqa: E402
from abook.store import Store, make_engine, schema  # noqa: E402
from abook.store import tracking as store_tracking  # noqa: E402
from abook.store.models import Account, Activity, BusinessUnit, Contact, Email, Lead, SystemUser  # noqa: E402
from abook.tracking import bulk as tracking_bulk  # noqa: E402
from abook.tracking import engine as tracking_engine  # noqa: E402
from abook.tracking.api import Owner, TrackRequest  # noqa: E402
from abook.tracking.bulk import track_many_txn  # noqa: E402
from abook.tracking.engine import token_for_email_txn, track_txn  # noqa: E402

#: the best rate over any run of this many messages is reported too: the machine is shared, and the best
#: window is the least disturbed by other processes (as timeit reports the minimum)
WINDOW = 1000

WORDS = ("offer invoice meeting project contract delivery quote support renewal order schedule update "
         "question proposal review budget").split()


def populate(store: Store, addresses: int, rng: random.Random) -> tuple[list[str], list[str], list[str]]:
    """Bulk-load the store; returns (customer addresses, user ids, user addresses)."""
    started = time.perf_counter()
    with store.transaction() as s:
        bu = BusinessUnit(name="Org")
        s.add(bu)
        s.flush()
        users = [SystemUser(domainname=f"user{i}", fullname=f"User {i}", internalemailaddress=f"user{i}@corp.example",
                            business_unit_id=bu.id, tracking_number=i + 1, incoming_method="router") for i in range(50)]
        s.add_all(users)
        s.flush()
        user_ids = [u.id for u in users]
        bu_id = bu.id
    per_kind = {"contact": addresses // 2, "lead": addresses // 4}
    per_kind["account"] = addresses - per_kind["contact"] - per_kind["lead"]
    sample: list[str] = []
    batch = 20_000
    for kind, model in (("contact", Contact), ("lead", Lead), ("account", Account)):
        table = model.__table__
        n = per_kind[kind]
        for start in range(0, n, batch):
            rows = []
            for i in range(start, min(n, start + batch)):
                address = f"{kind}{i}@customer{i % 997}.example"
                row = {"id": str(uuid.UUID(int=rng.getrandbits(128))), "emailaddress1": address,
                       "owner_id": user_ids[i % 50], "owningbusinessunit_id": bu_id}
                if kind == "account":
                    row["name"] = f"Account {i}"
                else:
                    row["fullname"] = f"{kind.title()} {i}"
                rows.append(row)
                if len(sample) < 50_000 and rng.random() < 50_000 / addresses:
                    sample.append(address)
            with store.transaction() as s:
                s.connection().execute(insert(table), rows)
    print(f"loaded {addresses:,} addresses in {time.perf_counter() - started:.0f}s", file=sys.stderr)
    return sample, user_ids, [f"user{i}@corp.example" for i in range(50)]


def crm_emails(store: Store, user_ids: list[str], config: TrackingConfig, n: int = 1000) -> list[tuple[str, str]]:
    """(message id, token) of n CRM emails sent earlier, for the replies to name."""
    out = []
    with store.transaction() as s:
        for i in range(n):
            activity_id = str(uuid.uuid4())
            s.connection().execute(insert(Activity.__table__), [{
                "id": activity_id, "activitytypecode": "email", "owner_id": user_ids[i % 50], "subject": f"Offer {i}",
                "statecode": 1, "statuscode": 3, "regarding_type": "account", "regarding_id": str(uuid.uuid4())}])
            mid = f"crm-{i}@corp.example"
            s.connection().execute(insert(Email.__table__), [{"activity_id": activity_id, "message_id": mid,
                                                              "directioncode": True, "message_key": f"crm:{i}"}])
            out.append((mid, token_for_email_txn(s, activity_id, config)))
    return out


def body_text(rng: random.Random, size: int) -> str:
    words = []
    total = 0
    while total < size:
        w = rng.choice(WORDS)
        words.append(w)
        total += len(w) + 1
    lines = [" ".join(words[i:i + 12]) for i in range(0, len(words), 12)]
    return "\r\n".join(lines)


def generate(rng: random.Random, i: int, customers: list[str], users: list[str],
             sent: list[tuple[str, str]], earlier: list[str]) -> bytes:
    n_rcpt = rng.randint(1, 20)
    pool = []
    for _ in range(n_rcpt):
        r = rng.random()
        pool.append(rng.choice(customers) if r < 0.6 else rng.choice(users) if r < 0.8
                    else f"stranger{rng.randrange(10**6)}@elsewhere{rng.randrange(100)}.example")
    sender = rng.choice(customers) if rng.random() < 0.7 else f"someone{rng.randrange(10**5)}@nowhere.example"
    to, cc = pool[: max(1, n_rcpt // 2)], pool[max(1, n_rcpt // 2):]
    subject = f"{rng.choice(WORDS).title()} {rng.choice(WORDS)} #{i}"
    headers = [f"From: Person {i} <{sender}>", "To: " + ", ".join(f"R{j} <{a}>" for j, a in enumerate(to)),
               f"Subject: {subject}", f"Date: Mon, 02 Nov 2026 {i // 3600 % 24:02d}:{i // 60 % 60:02d}:{i % 60:02d} +0000",
               f"Message-ID: <bench-{i}-{rng.getrandbits(32)}@customer.example>", "MIME-Version: 1.0"]
    if cc:
        headers.append("Cc: " + ", ".join(cc))
    r = rng.random()
    if r < 0.15 and sent:
        mid, token = rng.choice(sent)
        headers[2] = f"Subject: RE: {subject} {token}"
    elif r < 0.30 and earlier:
        parent = rng.choice(earlier)
        headers += [f"In-Reply-To: <{parent}>", f"References: <{parent}>"]
        headers[2] = f"Subject: Re: {subject}"
    text = body_text(rng, rng.randint(1000, 20_000))
    kind = rng.random()
    if kind < 0.2:
        blob = rng.randbytes(rng.randint(10_000, 200_000))
        b64 = base64.encodebytes(blob).decode().replace("\n", "\r\n")
        headers.append('Content-Type: multipart/mixed; boundary="BB"')
        body = (f"--BB\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--BB\r\n"
                f"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
                f'Content-Disposition: attachment; filename="doc{i}.pdf"\r\n\r\n{b64}--BB--\r\n')
    elif kind < 0.3:
        headers.append('Content-Type: multipart/alternative; boundary="AA"')
        body = (f"--AA\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n--AA\r\n"
                f"Content-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>{text}</p></body></html>\r\n--AA--\r\n")
    else:
        headers.append("Content-Type: text/plain; charset=utf-8")
        body = text + "\r\n"
    return ("\r\n".join(headers) + "\r\n\r\n" + body).encode("utf-8")


class Timed:
    """Wraps module-level functions to add up their wall time (the wrapped function is the real one)."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, module: object, name: str, label: str) -> None:
        original = getattr(module, name)

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            t = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] += time.perf_counter() - t
                self.calls[label] += 1

        setattr(module, name, timed)
        self._undo.append((module, name, original))

    def undo(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()


def run(store: Store, config: TrackingConfig, rng: random.Random, messages: int, batch: int, offset: int,
        customers: list[str], user_ids: list[str], user_addresses: list[str], sent: list[tuple[str, str]],
        earlier: list[str], router: bool = False) -> dict[str, object]:
    """Track ``messages`` generated messages, ``batch`` per transaction; only tracking is timed.

    ``router``: each transaction is the router's ``commit_batch_txn`` for one mailbox (loop damping, the
    batch's cursor and lease saved with it), as the daemon runs it after fetching a batch."""
    outcomes: Counter[str] = Counter()
    total_bytes = 0
    wall = cpu = commit_time = 0.0
    window: list[float] = []  # wall seconds of each run of WINDOW messages
    window_wall, window_count = 0.0, 0
    timed = Timed()
    timed.wrap(store_tracking, "resolve_addresses_txn", "resolve")  # the engine calls it through the module
    for module in (tracking_engine, tracking_bulk, router_batch):  # each message is parsed in one of them
        timed.wrap(module, "parse_message", "parse")
    timed.wrap(store_tracking, "insert_emails_txn", "insert")
    router_config = RouterConfig()
    now = datetime.now(timezone.utc)
    if router:
        with store.transaction() as s:
            for owner in user_ids:
                router_state.ensure_state_txn(s, f"mb-{owner}", "imap", Owner("systemuser", owner))
                router_state.claim_lease_txn(s, f"mb-{owner}", "bench", now, 3600)
    try:
        i = 0
        n_batch = offset // max(batch, 1)
        while i < messages:
            chunk = []
            owner = user_ids[n_batch % 50]  # one mailbox (one owner) per batch, as the router reads them
            n_batch += 1
            for _ in range(min(batch, messages - i)):
                raw = generate(rng, offset + i, customers, user_addresses, sent, earlier)
                earlier.append(raw.split(b"Message-ID: <", 1)[1].split(b">", 1)[0].decode())
                chunk.append(raw)
                total_bytes += len(raw)
                i += 1
            w0, c0 = time.perf_counter(), time.process_time()
            with store.transaction() as s:
                if router:
                    spec = BatchSpec(mailbox=f"mb-{owner}", holder="bench", role="router",
                                     owner=Owner("systemuser", owner), tracking=config,
                                     lease_seconds=router_config.lease_seconds,
                                     loop_max=router_config.loop_max_messages,
                                     loop_window=timedelta(minutes=router_config.loop_window_minutes))
                    items = tuple(Fetched(str(offset + i - len(chunk) + n), raw) for n, raw in enumerate(chunk))
                    result = commit_batch_txn(s, spec, items, str(offset + i), now)
                    outcomes.update(tracked=result.tracked, untracked=result.untracked)
                    outcomes["sighting"] += len(chunk) - result.tracked - result.untracked
                else:
                    requests = [TrackRequest(raw, f"mb-{owner}", Owner("systemuser", owner), "router")
                                for raw in chunk]
                    if batch == 1:
                        outcomes[track_txn(s, requests[0], config).outcome] += 1
                    else:
                        outcomes.update(r.outcome for r in track_many_txn(s, requests, config))
                c1 = time.perf_counter()
            commit_time += time.perf_counter() - c1
            elapsed = time.perf_counter() - w0
            wall += elapsed
            cpu += time.process_time() - c0
            window_wall += elapsed
            window_count += len(chunk)
            if window_count >= WINDOW:
                window.append(window_count / window_wall)
                window_wall, window_count = 0.0, 0
    finally:
        timed.undo()
    methods: Counter[str] = Counter()
    with store.transaction() as s:
        q = select(Email.correlation_method, func.count()).group_by(Email.correlation_method)
        for method, n in s.execute(q):
            methods[str(method)] += n
    per_message = {f"{label}_ms_per_message": round(timed.seconds[label] / messages * 1000, 3)
                   for label in ("parse", "resolve", "insert")}
    return {
        "path": "router" if router else "engine", "messages": messages, "batch": batch,
        "mean_kb": round(total_bytes / messages / 1024, 1),
        "messages_per_s": round(messages / wall, 1), "messages_per_cpu_s": round(messages / cpu, 1),
        "ms_per_message": round(wall / messages * 1000, 2),
        "best_window_per_s": round(max(window), 1) if window else None,
        **per_message, "commit_ms_per_message": round(commit_time / messages * 1000, 3),
        "resolve_queries": timed.calls["resolve"],
        "outcomes": {k: v for k, v in outcomes.items() if v}, "correlation_so_far": dict(methods),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--addresses", type=int, default=1_000_000)
    ap.add_argument("--messages", type=int, default=10_000)
    ap.add_argument("--batch", default="1,100",
                    help="messages per transaction; a comma-separated list runs once per size (default: 1,100)")
    ap.add_argument("--seed", type=int, default=4)
    ap.add_argument("--dir", help="where the SQLite file goes (default: a fresh temporary directory)")
    ap.add_argument("--json", action="store_true", help="print the result as one JSON line")
    ap.add_argument("--cache-mb", type=int, default=0,
                    help="SQLite page cache per connection in MB (default 0: the store's default)")
    ap.add_argument("--router", action="store_true",
                    help="drive the messages through the router's commit_batch_txn (one mailbox per batch)")
    ap.add_argument("--engine-too", action="store_true", help="with --router: also run the engine path")
    ap.add_argument("--no-sync", action="store_true",
                    help="do not write the freshly loaded store back to disk before timing (the old behaviour)")
    ap.add_argument("--store-cache", metavar="DIR",
                    help="keep the populated store in DIR and copy it for the next run with the same "
                         "--addresses and --seed (populating 1,000,000 addresses takes minutes)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    directory = Path(args.dir or tempfile.mkdtemp(prefix="abook-trackbench-"))
    db = directory / "bench.sqlite3"
    cached = Path(args.store_cache) / f"track-{args.addresses}-{args.seed}" if args.store_cache else None
    if cached is not None and (cached / "state.pickle").exists():
        shutil.copyfile(cached / "bench.sqlite3", db)
        customers, user_ids, user_addresses, sent, rng_state = pickle.loads((cached / "state.pickle").read_bytes())
        rng.setstate(rng_state)
        print(f"copied the store of {args.addresses:,} addresses from {cached}", file=sys.stderr)
    engine = make_engine(f"sqlite:///{db}")
    if args.cache_mb:
        @event.listens_for(engine, "connect")
        def _cache(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            dbapi_conn.execute(f"PRAGMA cache_size=-{args.cache_mb * 1024}")

    store = Store(engine)
    config = TrackingConfig()
    if cached is None or not (cached / "state.pickle").exists():
        schema.upgrade(store.engine)
        customers, user_ids, user_addresses = populate(store, args.addresses, rng)
        sent = crm_emails(store, user_ids, config)
        if cached is not None:
            with engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            cached.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(db, cached / "bench.sqlite3")
            (cached / "state.pickle").write_bytes(pickle.dumps((customers, user_ids, user_addresses, sent,
                                                                rng.getstate())))
    with engine.connect() as conn:
        page_cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
        db_mb = os.path.getsize(db) / 2**20
    if not args.no_sync:
        # The store just written (populated or copied) is still dirty in the OS page cache: the first WAL
        # checkpoint's fsync would write all of it back inside the timed commits (800 MB at 1,000,000
        # addresses), measuring the load rather than the tracking. Write it back before timing.
        started = time.perf_counter()
        os.sync()
        print(f"synced the store in {time.perf_counter() - started:.1f}s", file=sys.stderr)

    earlier: list[str] = []
    offset = 0
    paths = [False, True] if args.router and args.engine_too else [args.router]
    for router in paths:
        for batch in (int(b) for b in args.batch.split(",")):
            result = run(store, config, rng, args.messages, batch, offset, customers, user_ids, user_addresses,
                         sent, earlier, router=router)
            result["addresses"] = args.addresses
            result["page_cache"] = page_cache
            result["store_mb"] = round(db_mb)
            result["load_average"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
            offset += args.messages
            if args.json:
                print(json.dumps(result), flush=True)
            else:
                print(" ".join(f"{k}={v}" for k, v in result.items()), flush=True)
    store.dispose()
    if not args.dir:
        shutil.rmtree(directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
