"""Encoding search results: ldaptor's pureber, abook's server encoder, and the directory's RowEncoder.

    .venv/bin/python bench/encode_bench.py

Times (best of several runs, per entry) for a contact with all attributes: ldaptor building and encoding
``LDAPSearchResultEntry``; ``make_entry`` (row -> Entry) then ``EntryEncoder.entry`` (what the server did
on the reactor thread before); ``RowEncoder`` (row -> BER in one pass, on the directory's worker thread).
All three give the same bytes (tests/unit/server/test_encode.py, tests/unit/directory/test_encoded_entries.py).
"""

from __future__ import annotations

import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ldaptor.protocols import pureldap  # noqa: E402

from abook.directory.entries import RowEncoder, selection, view  # noqa: E402
from abook.server import encode  # noqa: E402


def best(f, runs: int = 7) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    v = view("contact")
    plan = v.plan(selection(()))
    tail = ",ou=Contacts,o=crm"
    rows = []
    for i in range(1000):
        row = [str(uuid.UUID(int=i)), "2026-01-01 00:00:00", "2026-01-02 00:00:00"]
        row += [f"value {j} of contact {i}" if j % 4 else None for j in range(len(v.columns) - 3)]
        rows.append(row)
    encoder = encode.EntryEncoder()
    entries = [v.make_entry("uid=" + r[0] + tail, r, plan, False) for r in rows]
    row_encoder = RowEncoder(v, plan, tail, False)
    n = len(rows)
    ldaptor = best(lambda: [pureldap.LDAPSearchResultEntry(objectName=e.dn, attributes=e.attributes).toWire()
                            for e in entries], 3) / n
    two_step = best(lambda: [encoder.entry(e.dn, e.attributes)
                             for e in [v.make_entry("uid=" + r[0] + tail, r, plan, False) for r in rows]]) / n
    fused = best(lambda: [row_encoder(r) for r in rows]) / n
    print(f"{len(entries[0].attributes)} attributes per entry, {n} entries")
    print(f"ldaptor pureber:                   {ldaptor * 1e6:6.1f} us/entry")
    print(f"make_entry + EntryEncoder.entry:   {two_step * 1e6:6.1f} us/entry")
    print(f"RowEncoder (row -> BER):           {fused * 1e6:6.1f} us/entry  ({two_step / fused:.1f}x faster)")


if __name__ == "__main__":
    main()
