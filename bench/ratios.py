"""Print abook/slapd ratios from ldapload --json lines of one run (see bench/ldap_bench.sh)."""

from __future__ import annotations

import json
import sys


def main(path: str) -> None:
    rows = [json.loads(line) for line in open(path) if line.strip()]
    by: dict[tuple[str, str], dict] = {}
    for r in rows:
        server = str(r.get("label", "")).split()[0]
        by[(server, r.get("workload"))] = r
    print("| workload | slapd | abook | abook / slapd | abook p99 ms |")
    print("|---|--:|--:|--:|--:|")
    for wl in ("typeahead", "contains", "mail"):
        s, a = by.get(("slapd", wl)), by.get(("abook", wl))
        if not (s and a):
            continue
        ss, aa = s["searches_per_s"], a["searches_per_s"]
        print(f"| {wl} | {ss:.0f}/s | {aa:.0f}/s | {aa / ss:.0%} | {a['lat_ms']['p99']:.1f} |")
    a = by.get(("abook", "vlv"))
    if a:  # slapd without sssvlv refuses VLV: no ratio
        print(f"| vlv (windows of 50) | refused (12) | {a['searches_per_s']:.0f}/s | | {a['lat_ms']['p99']:.1f} |")
    s, a = by.get(("slapd", "dump")), by.get(("abook", "dump"))
    if s and a:
        sb, ab = s["best_s"], a["best_s"]
        print(f"| dump (best s) | {sb:.2f} s | {ab:.2f} s | {ab / sb:.1f}x slapd's time | |")


if __name__ == "__main__":
    main(sys.argv[1])
