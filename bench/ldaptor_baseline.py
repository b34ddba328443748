#!/usr/bin/env python3
"""Naive Python baseline: the CRM directory served by ldaptor's in-memory DIT.

Two sub-commands:

``serve``
    Load an LDIF with ``ldaptor.inmemory.fromLDIFFile`` and serve it with
    ``ldaptor.protocols.ldap.ldapserver.LDAPServer`` on 127.0.0.1 (one
    process, one Twisted reactor thread).  Prints one line
    ``READY port=... entries=... load_s=... rss_mb=...`` when listening.
    Stops on SIGTERM/SIGINT.

``run`` (default)
    Generate the directory (gen_directory.py) unless ``--ldif`` is given,
    start ``serve`` as a child process, check ldapload.py's counts against
    ldapsearch (if installed), run the typeahead, mail and dump workloads
    with ldapload.py (``--server-pid`` = the child, so its CPU time is
    reported), then stop the child by its pid.

Needs Twisted and ldaptor (abook's own .venv has both, at the versions pyproject.toml pins); ldapload.py and
gen_directory.py only need the standard library.

Observed ldaptor 21.2.0 behaviour that matters for the figures:

* ``fromLDIFFile(f)`` calls ``f.read()`` once and feeds everything to a
  Twisted LineReceiver, which re-splits the remaining buffer for every
  line: loading is quadratic in the file size.  ``--read-mode chunked``
  (default) hands it a reader that returns 64 KiB per ``read()`` instead,
  which makes loading linear; ``--read-mode whole`` shows the naive cost.
* The in-memory search walks the whole subtree and matches every entry in
  Python; it ignores ``sizeLimit`` (all matches are returned, never
  sizeLimitExceeded) and the server ignores the (non-critical) paged-results
  control, so the "paged" dump arrives as one page.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


class ChunkedReader:
    """File wrapper whose read() returns at most `size` bytes (see module doc)."""

    def __init__(self, f, size=1 << 16):
        self.f, self.size = f, size

    def read(self, *_ignored):
        return self.f.read(self.size)


def rss_mb(pid="self"):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) // 1024
    except OSError:
        pass
    return -1


def serve(args):
    from twisted.internet import reactor
    from twisted.internet.protocol import ServerFactory
    from twisted.python import log
    from twisted.python.components import registerAdapter
    from ldaptor.inmemory import fromLDIFFile
    from ldaptor.interfaces import IConnectedLDAPEntry
    from ldaptor.protocols.ldap.ldapserver import LDAPServer

    class LDAPServerFactory(ServerFactory):
        protocol = LDAPServer

        def __init__(self, root):
            self.root = root

    registerAdapter(lambda factory: factory.root, LDAPServerFactory, IConnectedLDAPEntry)

    t0 = time.perf_counter()
    box = []
    with open(args.ldif, "rb") as f:
        d = fromLDIFFile(ChunkedReader(f) if args.read_mode == "chunked" else f)
    d.addCallbacks(box.append, lambda failure: box.append(failure))
    root = box[0]
    if not hasattr(root, "search"):
        root.raiseException()
    load_s = time.perf_counter() - t0
    count = []
    root.subtree().addCallback(lambda entries: count.append(len(entries)))

    if args.log:
        log.startLogging(open(args.log, "a"), setStdout=False)
    port = reactor.listenTCP(args.port, LDAPServerFactory(root), interface="127.0.0.1")
    print("READY port=%d entries=%d load_s=%.2f rss_mb=%d read_mode=%s pid=%d" % (
        port.getHost().port, count[0], load_s, rss_mb(), args.read_mode, os.getpid()), flush=True)
    reactor.run()   # Twisted stops the reactor on SIGTERM / SIGINT
    return 0


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def run(args):
    work = tempfile.mkdtemp(prefix="ldaptor-bench.")
    child = None
    rc = 0
    try:
        ldif = args.ldif
        if not ldif:
            ldif = os.path.join(work, "crm-%d.ldif" % args.count)
            t = time.perf_counter()
            subprocess.run([sys.executable, os.path.join(HERE, "gen_directory.py"), "-n", str(args.count),
                            "--base", args.base, "-o", ldif], check=True)
            print("generated %s in %.1f s" % (os.path.basename(ldif), time.perf_counter() - t), flush=True)
        port = args.port or free_port()
        cmd = [sys.executable, os.path.abspath(__file__), "serve", "--ldif", ldif, "--port", str(port),
               "--read-mode", args.read_mode, "--log", os.path.join(work, "ldaptor.log")]
        t = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = child.stdout.readline()
        if not line.startswith("READY"):
            raise SystemExit("ldaptor server did not start (exit code %s); see %s" % (
                child.wait(), os.path.join(work, "ldaptor.log")))
        print("ldaptor server pid %d: %s (started in %.1f s)" % (child.pid, line.strip(), time.perf_counter() - t),
              flush=True)
        info = dict(kv.split("=", 1) for kv in line.split()[1:])

        uri = "ldap://127.0.0.1:%d" % port
        common = [sys.executable, os.path.join(HERE, "ldapload.py"), "-H", uri, "-b", args.base,
                  "--ldif", ldif, "--server-pid", str(child.pid)]
        load = ["-p", str(args.processes), "--pipeline", str(args.pipeline),
                "-d", str(args.duration), "--warmup", str(args.warmup)]
        label = "ldaptor n=%s" % info.get("entries")
        if args.verify and shutil.which("ldapsearch"):
            for wl in args.workloads:
                vr = subprocess.run(common + ["--workload", wl, "--verify", str(1 if wl == "dump" else args.verify),
                                              "-c", "2", "--verify-seconds", str(args.verify_seconds)],
                                    stdout=subprocess.PIPE, text=True)
                print(vr.stdout.strip().splitlines()[-2] if wl != "dump" else vr.stdout.strip().splitlines()[0])
                print(vr.stdout.strip().splitlines()[-1], flush=True)
                if vr.returncode:
                    print(vr.stdout)
                    rc = 1
        elif args.verify:
            print("ldapsearch not installed: skipping the count check", flush=True)
        json_opt = ["--json", args.json] if args.json else []
        for wl in args.workloads:
            if wl == "dump":
                runs = [["--repeat", str(args.repeat)]]
            else:
                runs = [load + ["-c", str(c)] for c in args.connections]
            for extra in runs:
                r = subprocess.run(common + ["--workload", wl, "--label", label] + extra + json_opt)
                rc = rc or r.returncode
        print("ldaptor server RSS after the runs: %d MB" % rss_mb(child.pid))
    finally:
        if child is not None and child.poll() is None:
            os.kill(child.pid, signal.SIGTERM)
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(child.pid, signal.SIGKILL)
                child.wait()
        if args.keep:
            print("kept work directory %s" % work)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return rc


def main(argv=None):
    ap = argparse.ArgumentParser(description="ldaptor in-memory LDAP server baseline.")
    sub = ap.add_subparsers(dest="cmd")
    sp = sub.add_parser("serve", help="serve an LDIF with ldaptor on 127.0.0.1")
    sp.add_argument("--ldif", required=True)
    sp.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    sp.add_argument("--read-mode", choices=["chunked", "whole"], default="chunked",
                    help="how fromLDIFFile gets the file (default chunked; whole = naive f.read())")
    sp.add_argument("--log", help="Twisted log file (default: no logging)")

    rp = sub.add_parser("run", help="start the server, run the workloads, stop it (default)")
    rp.add_argument("-n", "--count", type=int, default=10000, help="people to generate (default 10000)")
    rp.add_argument("--ldif", help="use this LDIF instead of generating one")
    rp.add_argument("-b", "--base", default="o=crm")
    rp.add_argument("--port", type=int, default=0, help="TCP port (default: any free port)")
    rp.add_argument("--read-mode", choices=["chunked", "whole"], default="chunked")
    rp.add_argument("-c", "--connections", type=lambda s: [int(x) for x in s.split(",")], default=[8],
                    help="connections; a comma separated list runs each (default 8; e.g. 1,8)")
    rp.add_argument("-p", "--processes", type=int, default=1)
    rp.add_argument("--pipeline", type=int, default=1)
    rp.add_argument("-d", "--duration", type=float, default=20.0)
    rp.add_argument("--warmup", type=float, default=3.0)
    rp.add_argument("--repeat", type=int, default=3, help="dump repetitions (default 3)")
    rp.add_argument("--workloads", type=lambda s: s.split(","), default=["typeahead", "mail", "dump"],
                    help="comma separated (default typeahead,mail,dump)")
    rp.add_argument("--verify", type=int, default=10,
                    help="requests per workload to check against ldapsearch first (0 = skip; default 10)")
    rp.add_argument("--verify-seconds", type=float, default=3.0)
    rp.add_argument("--json", help="append each result as a JSON line to this file")
    rp.add_argument("--keep", action="store_true", help="keep the temporary work directory")

    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in ("serve", "run", "-h", "--help"):
        argv = ["run"] + list(argv)
    args = ap.parse_args(argv)
    return serve(args) if args.cmd == "serve" else run(args)


if __name__ == "__main__":
    sys.exit(main())
