"""One reader cannot starve everyone: a type-ahead load's latency with and without an attacker beside it.

    flock /tmp/abook-bench.lock .venv/bin/python bench/fairness_bench.py [-n 20000] [-d 15] [-c 8]
        [--attack-connections 1] [--pipeline 6] [--workers 1] [--unlimited] [--json FILE]

1. generates N contacts as LDIF (a small generator below: German-ish names, companies, mail addresses),
   creates a store with ``abook init`` / ``bu add`` / ``role add`` / ``user add`` and loads them with
   ``abook import``; two users read the whole organisation: ``reader`` (the normal load) and
   ``attacker``;
2. starts ``abook serve`` on a free 127.0.0.1 port with the given ``ldap.workers`` and every fairness
   setting at its default;
3. runs the normal load alone: ``-c`` connections bound as ``reader``, each sending one type-ahead
   search at a time (``(|(cn=P*)(mail=P*)(sn=P*)(givenName=P*))``, P a 2-3 letter prefix of a name or
   address, attributes cn and mail, sizeLimit 50, as Thunderbird's autocomplete and
   ``bench/ldap_bench.sh`` do), for ``-d`` seconds after a 2 s warm-up;
4. starts the attacker in a process of its own: ``--attack-connections`` connections bound as
   ``attacker``, each keeping ``--pipeline`` copies of review B3e's worst filter outstanding (an OR of
   500 substring filters on cn, each six one-letter ``any`` parts; about 2 s of CPU each on 20k contacts
   without a budget), and runs the normal load again beside it;
5. runs the normal load alone once more (the machine is shared: a drifting baseline shows);
6. prints per phase: searches/s, p50/p95/p99/max latency (of every search in flight during the
   measured window, however late its answer), the result codes, abook's server CPU per search, and the attacker's
   answers; then the p99 with the attacker over the mean p99 without it.

The load generator and the attacker are plain asyncio clients over raw BER (requests encoded once with
ldaptor, answers read by their tags); they share the machine's cores with the server, as any load
generator on one host does. Everything runs in a temporary directory, removed at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ABOOK = str(Path(sys.executable).parent / "abook")

from ldaptor.protocols import pureldap  # noqa: E402

from abook.server import encode  # noqa: E402

# -- the directory ------------------------------------------------------------------------------------

FIRST = ("Anna Ben Carla David Emma Felix Greta Hugo Ida Jonas Klara Lukas Mia Noah Olga Paul Quirin Rosa Sven "
         "Tina Ulf Vera Walter Xenia Yannick Zoe Aaron Bianca Clemens Doris Erik Frieda Georg Hanna Igor Julia "
         "Karl Lena Moritz Nina Otto Petra Rainer Sabine Thomas Ute Viktor Wanda Jürgen Zoë Søren Łukasz").split()
LAST = ("Schmidt Müller Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf "
        "Schröder Neumann Schwarz Zimmermann Braun Krüger Hofmann Hartmann Lange Schmitt Werner Krause Meier "
        "Lehmann Schmid Schulze Maier Köhler Herrmann König Walter Mayer Huber Kaiser Fuchs Peters Lang Scholz "
        "Möller Weiß Jung Hahn Schubert Vogel Friedrich Keller Günther Frank Berger Winkler Roth Beck Lorenz "
        "Baumann Franke Albrecht Nowak Kowalski Jensen Nielsen Rossi Bianchi Dubois Martin Garcia Silva").split()
WORDS = "nord sued ost west alpen rhein elbe main spree donau blau rot gruen gold stahl glas holz".split()
KINDS = "Logistik Software Pharma Textil Maschinen Medien Handel Bau Energie Versand".split()


def ascii_of(text: str) -> str:
    table = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "ë": "e", "ø": "o", "ł": "l"})
    return text.lower().translate(table)


def people(n: int, seed: int = 1) -> list[tuple[str, str, str, str, str]]:
    """(cn, givenName, sn, mail, o) for n people, the same for the same n and seed."""
    rng = random.Random(seed)
    companies = [f"{rng.choice(WORDS).title()}{rng.choice(WORDS)} {rng.choice(KINDS)} GmbH" for _ in range(max(1, n // 25))]
    out, seen = [], set()
    for i in range(n):
        given, sn = rng.choice(FIRST), rng.choice(LAST)
        cn = f"{given} {sn}"
        if cn.lower() in seen:
            cn = f"{given} {rng.choice(string.ascii_uppercase)}. {sn}"
            if cn.lower() in seen:
                cn = f"{given} {sn} {i}"
        seen.add(cn.lower())
        company = rng.choice(companies)
        domain = ascii_of(company.split()[0]) + "-" + ascii_of(company.split()[1]) + ".example"
        local = rng.choice([f"{ascii_of(given)}.{ascii_of(sn)}", f"{ascii_of(given)[0]}{ascii_of(sn)}",
                            f"{ascii_of(sn)}.{ascii_of(given)[0]}"])
        out.append((cn, given, sn, f"{local}{i}@{domain}", company))
    return out


def write_ldif(path: Path, persons: list[tuple[str, str, str, str, str]]) -> None:
    import base64

    def line(attr: str, value: str) -> str:
        if value.isascii():
            return f"{attr}: {value}\n"
        return f"{attr}:: {base64.b64encode(value.encode()).decode()}\n"

    with path.open("w", encoding="utf-8") as f:
        f.write("dn: o=crm\nobjectClass: organization\no: crm\n\n")
        f.write("dn: ou=Contacts,o=crm\nobjectClass: organizationalUnit\nou: Contacts\n\n")
        for cn, given, sn, mail, company in persons:
            f.write(line("dn", f"cn={cn},ou=Contacts,o=crm") + "objectClass: inetOrgPerson\n" + line("cn", cn)
                    + line("givenName", given) + line("sn", sn) + f"mail: {mail}\n" + line("o", company)
                    + "title: Engineer\n\n")


def abook(*args: str, stdin: str | None = None) -> None:
    subprocess.run([ABOOK, *args], check=True, input=stdin, text=True, stdout=subprocess.DEVNULL)


#: --unlimited: the fairness settings turned off, to see what they protect against
UNLIMITED = "search_cost_seconds = 0\nsearches_per_user = 64\nsearches_per_connection = 64\n"


def build(work: Path, n: int, workers: int, unlimited: bool) -> tuple[Path, int, list[tuple[str, str, str, str, str]]]:
    persons = people(n)
    ldif = work / "contacts.ldif"
    write_ldif(ldif, persons)
    port = free_port()
    config = work / "abook.toml"
    config.write_text(f'[store]\ndata_dir = "{work / "var"}"\n[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
                      f'workers = {workers}\n[ldap.limits]\nfailed_binds_per_minute = 1000\n'
                      + (UNLIMITED if unlimited else "") + '[logging]\nlevel = "info"\n')
    c = str(config)
    abook("init", "-c", c)
    abook("bu", "add", "-c", c, "Bench")
    abook("role", "add", "-c", c, "Org Reader", *[a for e in ("account", "contact", "lead", "queue", "systemuser",
                                                            "equipment") for a in ("--read", f"{e}=organisation")])
    for user in ("reader", "attacker"):
        abook("user", "add", "-c", c, user, "--bu", "Bench", "--email", f"{user}@example.com", "--password-stdin",
              stdin=f"{user}-password\n")
        abook("user", "roles", "-c", c, user, "--grant", "Org Reader")
        abook("user", "set", "-c", c, user, "address_book_matching=all")
    t = time.perf_counter()
    abook("import", "-c", c, "--owner", "reader", str(ldif))
    print(f"imported {n} contacts in {time.perf_counter() - t:.1f} s", flush=True)
    return config, port, persons


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- LDAP over raw BER ----------------------------------------------------------------------------------

def typeahead_ops(persons: list[tuple[str, str, str, str, str]], count: int = 1000) -> list[bytes]:
    rng = random.Random(7)
    ops = []
    for _ in range(count):
        cn, given, sn, mail, _o = rng.choice(persons)
        prefix = rng.choice([cn, given, sn, mail]).lower()[: rng.choice((2, 3))]
        parts = [pureldap.LDAPFilter_substrings(type=a, substrings=[pureldap.LDAPFilter_substrings_initial(prefix)])
                 for a in ("cn", "mail", "sn", "givenName")]
        ops.append(pureldap.LDAPSearchRequest(baseObject="o=crm", scope=2, sizeLimit=50, attributes=["cn", "mail"],
                                              filter=pureldap.LDAPFilter_or(parts)).toWire())
    return ops


def worst_op(offset: int) -> bytes:
    """Review B3e: (|(cn=*a*b*c*d*e*f*)(cn=*b*c*d*e*f*g*)...) with 500 elements, no attributes."""
    letters = string.ascii_lowercase
    parts = [pureldap.LDAPFilter_substrings(type="cn", substrings=[
        pureldap.LDAPFilter_substrings_any(letters[(i + offset + j) % 26]) for j in range(6)]) for i in range(500)]
    return pureldap.LDAPSearchRequest(baseObject="o=crm", scope=2, attributes=["1.1"],
                                      filter=pureldap.LDAPFilter_or(parts)).toWire()


def bind_op(name: str, password: str) -> bytes:
    return pureldap.LDAPBindRequest(dn=name, auth=password).toWire()


def _length(buf: bytes, pos: int) -> tuple[int, int]:
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    n = first & 0x7F
    return int.from_bytes(buf[pos + 1:pos + 1 + n], "big"), pos + 1 + n


class Connection:
    """One LDAP connection on asyncio: send requests, read (message id, op tag, result code) per message."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = b""

    @classmethod
    async def open(cls, port: int) -> "Connection":
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 22)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    def send(self, msg_id: int, op: bytes) -> None:
        self.writer.write(encode.message(msg_id, op))

    async def next(self) -> tuple[int, int, int]:
        while True:
            if len(self.buf) >= 2:
                length, body = _length(self.buf, 1)
                if len(self.buf) >= body + length:
                    msg, self.buf = self.buf[body:body + length], self.buf[body + length:]
                    id_len = msg[1]
                    msg_id = int.from_bytes(msg[2:2 + id_len], "big", signed=True)
                    op_pos = 2 + id_len
                    tag = msg[op_pos]
                    rc = -1
                    if tag in (0x61, 0x65, 0x78):  # Bind, SearchResultDone, Extended: ENUMERATED result first
                        _l, content = _length(msg, op_pos + 1)
                        rc = msg[content + 2]
                    return msg_id, tag, rc
            chunk = await self.reader.read(1 << 20)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk

    async def bind(self, name: str, password: str) -> None:
        self.send(1, bind_op(name, password))
        await self.writer.drain()
        _id, _tag, rc = await self.next()
        if rc != 0:
            raise RuntimeError(f"bind as {name} failed: {rc}")

    async def done(self) -> tuple[int, int]:
        """(message id, result code) of the next SearchResultDone; entries are counted, not decoded."""
        while True:
            msg_id, tag, rc = await self.next()
            if tag == 0x65:
                return msg_id, rc


# -- the normal load ------------------------------------------------------------------------------------

async def typeahead_phase(port: int, ops: list[bytes], conns: int, seconds: float, warmup: float) -> dict[str, Any]:
    """The normal load for ``warmup`` + ``seconds``. Counted: every search in flight during the measured
    window (sent in it, or sent before and answered in it), with its whole latency, however late."""
    done: list[tuple[float, float, int]] = []  # (sent, answered, result code)

    async def one(k: int) -> None:
        c = await Connection.open(port)
        await c.bind("reader", "reader-password")
        rng = random.Random(k)
        msg_id = 2
        while not stop.is_set():
            op = ops[rng.randrange(len(ops))]
            t = time.perf_counter()
            c.send(msg_id, op)
            _id, rc = await c.done()
            done.append((t, time.perf_counter(), rc))
            msg_id += 1
        c.writer.close()

    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(one(k)) for k in range(conns)]
    await asyncio.sleep(warmup)
    cpu0, t0 = server_cpu(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu1, t1 = server_cpu(), time.perf_counter()
    stop.set()
    await asyncio.gather(*tasks)  # the searches in flight are answered
    counted = [(sent, answered, rc) for sent, answered, rc in done if answered >= t0 and sent < t1]
    latencies = sorted(answered - sent for sent, answered, _rc in counted)
    codes: dict[int, int] = {}
    for _s, _a, rc in counted:
        codes[rc] = codes.get(rc, 0) + 1
    answered_in_window = sum(t0 <= answered < t1 for _s, answered, _rc in counted)

    def pct(p: float) -> float:
        return 1000 * latencies[min(len(latencies) - 1, int(len(latencies) * p))]

    return {"searches": len(latencies), "per_s": answered_in_window / (t1 - t0), "p50_ms": pct(0.50),
            "p95_ms": pct(0.95), "p99_ms": pct(0.99), "max_ms": 1000 * latencies[-1], "codes": codes,
            "server_cpu_us_per_search": 1e6 * (cpu1 - cpu0) / max(1, answered_in_window),
            "server_cores": (cpu1 - cpu0) / (t1 - t0)}


SERVER_PIDS: list[int] = []


def server_cpu() -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in SERVER_PIDS:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / ticks


# -- the attacker ---------------------------------------------------------------------------------------

def attacker(port: int, conns: int, pipeline: int, ready: Any, stop: Any, results: Any) -> None:
    """Keeps ``pipeline`` worst filters outstanding on each of ``conns`` connections until ``stop``."""
    ops = [worst_op(i) for i in range(pipeline)]

    async def one(k: int, codes: dict[int, int]) -> None:
        c = await Connection.open(port)
        await c.bind("attacker", "attacker-password")
        msg_id = 2
        for op in ops:
            c.send(msg_id, op)
            msg_id += 1
        await c.writer.drain()
        first = True
        while not stop.is_set():
            try:
                _id, rc = await asyncio.wait_for(c.done(), 0.5)
            except asyncio.TimeoutError:
                continue
            codes[rc] = codes.get(rc, 0) + 1
            if first:
                ready.set()  # the attack is under way
                first = False
            c.send(msg_id, ops[msg_id % len(ops)])  # keep the pipeline full
            msg_id += 1
        c.writer.close()

    async def main() -> dict[int, int]:
        codes: dict[int, int] = {}
        await asyncio.gather(*(one(k, codes) for k in range(conns)))
        return codes

    results.put(asyncio.run(main()))


# -- the run --------------------------------------------------------------------------------------------

def start_server(config: Path, port: int, workers: int, log: Path) -> subprocess.Popen:
    out = log.open("w")
    proc = subprocess.Popen([ABOOK, "serve", "-c", str(config)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise SystemExit(f"abook serve exited: {log.read_text()}")
        text = log.read_text()
        serving = text.count("abook started") >= 1 and text.count("serving with store") >= workers - 1
        if serving:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                pass
        if time.monotonic() > deadline:
            raise SystemExit("abook serve did not start")
        time.sleep(0.1)
    SERVER_PIDS[:] = [proc.pid, *children(proc.pid)]
    return proc


def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def report(name: str, r: dict[str, Any]) -> str:
    codes = ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))
    return (f"| {name} | {r['per_s']:.0f} | {r['p50_ms']:.2f} | {r['p95_ms']:.2f} | {r['p99_ms']:.2f} | "
            f"{r['max_ms']:.1f} | {r['server_cpu_us_per_search']:.0f} | {r['server_cores']:.2f} | {codes} |")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("-n", type=int, default=20000, help="contacts (default 20000)")
    ap.add_argument("-d", "--seconds", type=float, default=15.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("-c", "--connections", type=int, default=8, help="type-ahead connections")
    ap.add_argument("--attack-connections", type=int, default=1)
    ap.add_argument("--pipeline", type=int, default=6, help="worst filters outstanding per attacker connection")
    ap.add_argument("--workers", type=int, default=1, help="ldap.workers (default 1, the config's default)")
    ap.add_argument("--unlimited", action="store_true",
                    help="turn the fairness settings off (no cost budget, shares of 64): the attack unchecked")
    ap.add_argument("--json", help="append the results as one JSON line to this file")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="abook-fairness-") as tmp:
        work = Path(tmp)
        config, port, persons = build(work, args.n, args.workers, args.unlimited)
        proc = start_server(config, port, args.workers, work / "abook.log")
        try:
            ops = typeahead_ops(persons)
            print(f"abook processes {SERVER_PIDS} (ldap.workers = {args.workers}); {args.connections} type-ahead "
                  f"connections; attacker: {args.attack_connections} x {args.pipeline} pipelined", flush=True)
            phases: dict[str, Any] = {}
            phases["alone"] = asyncio.run(typeahead_phase(port, ops, args.connections, args.seconds, args.warmup))
            print(report("alone", phases["alone"]), flush=True)

            ctx = multiprocessing.get_context("spawn")
            ready, stop, results = ctx.Event(), ctx.Event(), ctx.Queue()
            attack = ctx.Process(target=attacker, args=(port, args.attack_connections, args.pipeline, ready, stop,
                                                        results))
            a_cpu0, a_t0 = server_cpu(), time.perf_counter()
            attack.start()
            if not ready.wait(120):
                raise SystemExit("the attacker got no answer in 120 s")
            phases["attacked"] = asyncio.run(typeahead_phase(port, ops, args.connections, args.seconds,
                                                             args.warmup))
            stop.set()
            attack_codes = results.get(timeout=60)
            attack.join(30)
            attack_seconds = time.perf_counter() - a_t0
            print(report("with the attacker", phases["attacked"]), flush=True)
            print(f"attacker's answers in {attack_seconds:.1f} s: {attack_codes} (11 = adminLimitExceeded)",
                  flush=True)
            phases["alone again"] = asyncio.run(typeahead_phase(port, ops, args.connections, args.seconds,
                                                                args.warmup))
            print(report("alone again", phases["alone again"]), flush=True)
        finally:
            proc.send_signal(signal.SIGTERM)  # the server this script started
            proc.wait(60)
        base = (phases["alone"]["p99_ms"] + phases["alone again"]["p99_ms"]) / 2
        ratio = phases["attacked"]["p99_ms"] / base
        print()
        print(f"type-ahead, {args.n} contacts, ldap.workers = {args.workers}, {args.connections} connections, "
              f"{args.seconds:.0f} s per phase; attacker {args.attack_connections} x {args.pipeline} pipelined"
              + ("; fairness settings OFF (--unlimited)" if args.unlimited else ""))
        print("| phase | searches/s | p50 ms | p95 ms | p99 ms | max ms | server CPU us/search | server cores | "
              "result codes |")
        print("|---|--:|--:|--:|--:|--:|--:|--:|---|")
        for name, r in phases.items():
            print(report(name, r))
        print(f"p99 with the attacker / p99 without (mean of both runs alone): {ratio:.2f}x (aim: within 2x); "
              f"attacker's answers: {attack_codes}")
        if args.json:
            with open(args.json, "a") as f:
                f.write(json.dumps({"n": args.n, "workers": args.workers, "unlimited": args.unlimited, "phases": phases,
                                    "attacker": attack_codes, "ratio": ratio}) + "\n")


if __name__ == "__main__":
    main()
