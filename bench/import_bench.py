#!/usr/bin/env python3
"""Measure `abook import` of N plain inetOrgPerson contacts from bench/gen_directory.py.

Generates the LDIF into a temporary directory, creates a fresh SQLite store there (`abook init`), imports
ldif/demo.ldif (for the default owner), then times `abook import` of the generated file through the CLI's
own code path, and a second, idempotent import of the same file. Prints seconds and records/s.

    .venv/bin/python bench/import_bench.py [-n 100000] [--keep]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from abook.cli import main  # noqa: E402


def run(argv: list[str]) -> float:
    started = time.perf_counter()
    rc = main(argv)
    if rc:
        raise SystemExit(f"abook {' '.join(argv)} exited {rc}")
    return time.perf_counter() - started


def bench() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=100_000, help="contacts to generate (default %(default)s)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="abook-import-bench-"))
    try:
        ldif = tmp / f"contacts-{args.n}.ldif"
        subprocess.run([sys.executable, str(REPO / "bench" / "gen_directory.py"), "-n", str(args.n), "-o", str(ldif)],
                       check=True, stderr=subprocess.DEVNULL)
        config = tmp / "abook.toml"
        config.write_text('[store]\ndata_dir = "var"\n')
        c = ["-c", str(config)]
        run(["init", *c])
        run(["import", *c, str(REPO / "ldif" / "demo.ldif")])
        first = run(["import", *c, str(ldif)])
        again = run(["import", *c, str(ldif)])
        exported = tmp / "export.ldif"
        export = run(["export", *c, "-o", str(exported)])
        fresh = tmp / "fresh.toml"
        fresh.write_text('[store]\ndata_dir = "fresh"\n')
        run(["init", "-c", str(fresh)])
        crm = run(["import", "-c", str(fresh), str(exported)])
        size, crm_size = ldif.stat().st_size >> 20, exported.stat().st_size >> 20
        print(f"\n{args.n} plain contacts ({size} MiB LDIF) into a fresh SQLite store: {first:.1f} s "
              f"({args.n / first:,.0f} records/s)\n"
              f"re-import of the same file (nothing changes): {again:.1f} s ({args.n / again:,.0f} records/s)\n"
              f"export of the whole store ({crm_size} MiB CRM-shaped LDIF): {export:.1f} s\n"
              f"that export into another fresh store: {crm:.1f} s ({args.n / crm:,.0f} contacts/s)")
    finally:
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp)


if __name__ == "__main__":
    bench()
