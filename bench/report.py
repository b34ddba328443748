#!/usr/bin/env python3
"""Turn ldapload.py --json result lines into the Markdown tables of bench/README.md.

    python3 report.py results.jsonl [more.jsonl ...]

Search workloads and full dumps get one table each; rows keep the order of
the input.  Standard library only.
"""

import json
import sys


def fmt(v, digits=1):
    if v is None:
        return "-"
    if isinstance(v, float):
        if v != v:  # NaN
            return "-"
        return ("%%.%df" % digits) % v
    return str(v)


def main(paths):
    rows = []
    for p in paths:
        with open(p) as f:
            rows.extend(json.loads(line) for line in f if line.strip())
    searches = [r for r in rows if r["workload"] != "dump"]
    dumps = [r for r in rows if r["workload"] == "dump"]
    if searches:
        print("| server, entries | workload | conns | searches/s | entries/s | entries/search | "
              "p50 ms | p95 ms | p99 ms | server CPU us/search | CPU cores client / server / other |")
        print("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|---|")
        for r in searches:
            lat = r["lat_ms"]
            small = r["searches"] < 100
            print("| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s / %s / %s |" % (
                r.get("label") or r["target"], r["workload"], r["connections"],
                fmt(r["searches_per_s"], 1 if r["searches_per_s"] < 100 else 0),
                fmt(r["entries_per_s"], 0), fmt(r["entries_per_search_avg"]),
                fmt(lat["p50"], 2), fmt(lat["p95"], 2),
                fmt(lat["p99"], 2) + (" (n=%d)" % r["searches"] if small else ""),
                fmt(r.get("server_cpu_us_per_search"), 0),
                fmt(r["client_cpu_cores"], 2), fmt(r.get("server_cpu_cores"), 2),
                fmt(r.get("other_cores"), 2)))
    if dumps:
        if searches:
            print()
        print("| server, entries | full dump, page size | pages | seconds best / median | entries/s (best) | "
              "server CPU s per dump | CPU cores client / server / other |")
        print("|---|--:|--:|--:|--:|--:|---|")
        for r in dumps:
            print("| %s | %s | %d | %s / %s (%d runs) | %s | %s | %s / %s / %s |" % (
                r.get("label") or r["target"], r["page_size"], r["pages"],
                fmt(r["best_s"], 3), fmt(r["median_s"], 3), len(r["runs"]),
                fmt(r["entries_per_s_best"], 0), fmt(r.get("server_cpu_s_per_dump"), 2),
                fmt(r["client_cpu_cores"], 2), fmt(r.get("server_cpu_cores"), 2),
                fmt(r.get("other_cores"), 2)))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main(sys.argv[1:])
