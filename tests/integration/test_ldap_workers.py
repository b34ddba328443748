"""``ldap.workers = 2``: the daemon and an LDAP worker process share the listening sockets.

The daemon runs as a subprocess (`abook serve`, or twistd) over the demo organisation. Who serves a
connection is observed from outside: the established TCP connections each process holds (its
/proc/<pid>/fd sockets matched against /proc/net/tcp), and, to make the worker the only one that can
answer, the daemon stopped with SIGSTOP for a moment (a stopped process accepts nothing; whatever answers
then is the worker).
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.fixtures.ldap_server import make_tls_files
from tests.helpers import REPO, free_port, wait_for_port, wait_until

VENV_BIN = Path(sys.executable).parent
DEMO = REPO / "ldif" / "demo.ldif"
NANCY = "cn: Nancy Davolio"
#: alice reads every Contact; this filter matches exactly one
FILTER = "(mail=nancy*)"


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store holding the demo organisation, shared (read-only) by every daemon of the module."""
    var = tmp_path_factory.mktemp("workers") / "var"
    cfg = var.parent / "init.toml"
    cfg.write_text(f'[store]\ndata_dir = "{var}"\n')
    for args in (["init"], ["import", str(DEMO)]):
        subprocess.run([str(VENV_BIN / "abook"), *args, "-c", str(cfg)], check=True, capture_output=True,
                       timeout=120)
    return var


class Daemon:
    """A daemon subprocess whose output is collected line by line as it comes."""

    def __init__(self, cmd: list[str], port: int, cwd: Path) -> None:
        self.port = port
        self.lines: list[str] = []
        self.proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def wait_for_line(self, pattern: str, start: int = 0, timeout: float = 60.0) -> int:
        """Wait until a line from ``start`` on matches ``pattern``; its index."""
        found: list[int] = []

        def check() -> bool:
            if self.proc.poll() is not None and not self._reader.is_alive():
                raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log}")
            for i in range(start, len(self.lines)):
                if re.search(pattern, self.lines[i]):
                    found.append(i)
                    return True
            return False

        wait_until(check, timeout, f"a log line matching {pattern!r}")
        return found[0]

    def workers(self) -> list[int]:
        return children(self.proc.pid)

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()  # the daemon this test started, by its pid
            self.proc.wait()
        self._reader.join(30)
        return self.proc.returncode


def _write_config(tmp_path: Path, var: Path, port: int, workers: int | None, extra: str = "") -> Path:
    cfg = tmp_path / "abook.toml"
    line = f"workers = {workers}\n" if workers is not None else ""
    cfg.write_text(f'[store]\ndata_dir = "{var}"\n[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n{line}'
                   f'{extra}[logging]\nlevel = "info"\n')
    return cfg


def _start(tmp_path: Path, var: Path, workers: int | None = 2, extra: str = "", how: str = "serve") -> Daemon:
    port = free_port()
    cfg = _write_config(tmp_path, var, port, workers, extra)
    if how == "serve":
        cmd = [str(VENV_BIN / "abook"), "serve", "-c", str(cfg)]
    else:
        cmd = [str(VENV_BIN / "twistd"), "-n", "--pidfile=", "abook", "-c", str(cfg)]
    d = Daemon(cmd, port, tmp_path)
    try:
        wait_for_port(port, proc=d.proc, timeout=60)
        d.wait_for_line(r"abook started")
        if workers and workers > 1:
            d.wait_for_line(r"LDAP worker 1 serving")
    except BaseException:
        d.stop()
        raise
    return d


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


# -- observing processes from outside ---------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of a process, or None once it no longer exists."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text.rsplit(")", 1)[1].split()
    return fields[0], int(fields[1])


def alive(pid: int) -> bool:
    st = _stat(pid)
    return st is not None and st[0] not in ("Z", "X")


def children(pid: int) -> list[int]:
    """The live LDAP worker processes whose parent is ``pid``."""
    out = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        st = _stat(int(entry))
        if st is None or st[1] != pid or st[0] in ("Z", "X"):
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (FileNotFoundError, ProcessLookupError):  # the process or descriptor went meanwhile
            continue
        if b"ldap-worker" in cmdline:
            out.append(int(entry))
    return out


def established(pid: int, port: int) -> int:
    """How many established TCP connections to ``port`` process ``pid`` holds (server side)."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except (FileNotFoundError, ProcessLookupError):  # the process or descriptor went meanwhile
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for row in Path(table).read_text().splitlines()[1:]:
            cols = row.split()
            local_port = int(cols[1].rsplit(":", 1)[1], 16)
            if local_port == port and cols[3] == "01" and cols[9] in inodes:  # 01: ESTABLISHED
                count += 1
    return count


class stopped:
    """While the daemon's own process is stopped (SIGSTOP), only its worker can accept connections."""

    def __init__(self, daemon: Daemon) -> None:
        self.pid = daemon.proc.pid

    def __enter__(self) -> None:
        os.kill(self.pid, signal.SIGSTOP)
        wait_until(lambda: (_stat(self.pid) or ("?",))[0] == "T", 10, "the daemon to stop")

    def __exit__(self, *exc: object) -> None:
        os.kill(self.pid, signal.SIGCONT)


# -- clients ------------------------------------------------------------------------------------------


def ldapsearch(url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(["ldapsearch", "-x", "-H", url, "-D", "alice", "-w", "alice-demo", "-LLL",
                           "-o", "ldif-wrap=no", *args, "-b", "ou=Contacts,o=crm", FILTER, "cn", "mail"],
                          capture_output=True, text=True, timeout=30,
                          env={"PATH": os.environ["PATH"], "HOME": "/nonexistent", **(env or {})})


def _ldap3(port: int, tls: object = None, use_ssl: bool = False):  # type: ignore[no-untyped-def]
    import ldap3

    server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE, use_ssl=use_ssl, tls=tls,
                          connect_timeout=10)
    return ldap3.Connection(server, user="alice", password="alice-demo", raise_exceptions=True,
                            receive_timeout=30)


def _nancy(conn) -> list[str]:  # type: ignore[no-untyped-def]
    conn.search("ou=Contacts,o=crm", FILTER, attributes=["cn", "mail"])
    return [str(e.cn) for e in conn.entries]


# -- tests --------------------------------------------------------------------------------------------


def test_fresh_connections_are_answered_and_shared_by_both_processes(tmp_path: Path, demo_store: Path,
                                                                     daemons: list[Daemon]) -> None:
    d = _start(tmp_path, demo_store)
    daemons.append(d)
    (worker,) = d.workers()
    held = []
    try:
        # Connections kept open, each bound and answered, until both processes hold some: the kernel
        # hands every accepted connection to one of them.
        for _ in range(400):
            conn = _ldap3(d.port)
            conn.bind()
            assert _nancy(conn) == ["Nancy Davolio"]
            held.append(conn)
            if len(held) >= 20 and established(d.proc.pid, d.port) and established(worker, d.port):
                break
        by_parent, by_worker = established(d.proc.pid, d.port), established(worker, d.port)
        assert by_parent > 0 and by_worker > 0, (by_parent, by_worker)
        assert by_parent + by_worker == len(held)
    finally:
        for conn in held:
            conn.unbind()
    # Thunderbird-style fresh connections from ldapsearch: every one answered right.
    for _ in range(30):
        r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
        assert r.returncode == 0, r.stderr
        assert r.stdout.count("dn: ") == 1 and NANCY in r.stdout


def test_ldaps_and_starttls_through_the_worker(tmp_path: Path, demo_store: Path, daemons: list[Daemon]) -> None:
    cert, key = make_tls_files(tmp_path)
    tls_port = free_port()
    d = _start(tmp_path, demo_store, extra=f'listen_tls = ["ssl:{tls_port}:interface=127.0.0.1"]\n'
                                           f'tls_certificate = "{cert}"\ntls_key = "{key}"\n'
                                           f"require_tls_for_bind = true\n")
    daemons.append(d)
    assert "--listener 4:INET:tls" in Path(f"/proc/{d.workers()[0]}/cmdline").read_text().replace("\0", " ")
    import ldap3

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(cert))
    env = {"LDAPTLS_CACERT": str(cert)}
    with stopped(d):
        for _ in range(3):
            r = ldapsearch(f"ldap://127.0.0.1:{d.port}", "-ZZ", env=env)
            assert r.returncode == 0 and NANCY in r.stdout, r.stderr
            r = ldapsearch(f"ldaps://127.0.0.1:{tls_port}", env=env)
            assert r.returncode == 0 and NANCY in r.stdout, r.stderr
        conn = _ldap3(d.port, tls=tls)
        conn.open()
        conn.start_tls()
        conn.bind()
        assert _nancy(conn) == ["Nancy Davolio"]
        conn.unbind()
        conn = _ldap3(tls_port, tls=tls, use_ssl=True)
        conn.bind()
        assert _nancy(conn) == ["Nancy Davolio"]
        conn.unbind()
        # and a plain bind without TLS is refused by the worker as by the daemon (confidentialityRequired)
        r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
        assert r.returncode == 13, (r.returncode, r.stderr)


def _maps_tls_stack(pid: int) -> bool:
    """Whether the process has cryptography's compiled bindings mapped (pyOpenSSL loads them)."""
    return "/cryptography/" in Path(f"/proc/{pid}/maps").read_text()


def test_without_tls_neither_process_loads_the_tls_stack(tmp_path: Path, demo_store: Path,
                                                         daemons: list[Daemon]) -> None:
    # No listen_tls and no certificate: nothing can use TLS, so neither process pays for pyOpenSSL and
    # cryptography (about 12 MB of RSS each); both still answer. The TLS test above shows the other case.
    d = _start(tmp_path, demo_store)
    daemons.append(d)
    (worker,) = d.workers()
    assert not _maps_tls_stack(d.proc.pid) and not _maps_tls_stack(worker)
    with stopped(d):  # only the worker can answer
        r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
        assert r.returncode == 0 and NANCY in r.stdout, r.stderr
        r = ldapsearch(f"ldap://127.0.0.1:{d.port}", "-ZZ")  # StartTLS demanded: refused, not a crash
        assert r.returncode != 0 and "Nancy" not in r.stdout and "StartTLS" in r.stderr, r.stderr
        r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
        assert r.returncode == 0 and NANCY in r.stdout, r.stderr


def test_a_killed_worker_is_restarted(tmp_path: Path, demo_store: Path, daemons: list[Daemon]) -> None:
    d = _start(tmp_path, demo_store)
    daemons.append(d)
    (old,) = d.workers()
    mark = len(d.lines)
    os.kill(old, signal.SIGKILL)
    d.wait_for_line(rf"LDAP worker 1 \(pid {old}\) exited unexpectedly \(signal 9\)", mark)
    d.wait_for_line(r"LDAP worker 1 serving", mark)
    (new,) = d.workers()
    assert new != old and not alive(old)
    with stopped(d):  # the new worker alone answers
        for _ in range(3):
            r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
            assert r.returncode == 0 and NANCY in r.stdout, r.stderr
    for _ in range(10):
        r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
        assert r.returncode == 0 and NANCY in r.stdout, r.stderr


def test_a_worker_that_cannot_start_is_retried_with_backoff(tmp_path: Path, demo_store: Path,
                                                            daemons: list[Daemon]) -> None:
    d = _start(tmp_path, demo_store)
    daemons.append(d)
    cfg = tmp_path / "abook.toml"
    good = cfg.read_text()
    cfg.write_text(good + "[ldap.broken\n")  # a worker re-reads the file: now it cannot start
    (old,) = d.workers()
    mark = len(d.lines)
    os.kill(old, signal.SIGKILL)
    delays = []
    at = mark
    for _ in range(4):
        at = d.wait_for_line(r"LDAP worker 1 \(pid \d+\) exited unexpectedly", at) + 1
        delays.append(float(re.search(r"restarting it in ([\d.]+) s", d.lines[at - 1]).group(1)))  # type: ignore[union-attr]
    assert delays == [0.5, 1.0, 2.0, 4.0]
    assert "not valid TOML" in "".join(d.lines[mark:])  # the worker's own complaint, relayed
    cfg.write_text(good)
    d.wait_for_line(r"LDAP worker 1 serving", at)
    r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
    assert r.returncode == 0 and NANCY in r.stdout, r.stderr


@pytest.mark.parametrize("how", ["serve", "twistd"])
def test_sigterm_to_the_daemon_leaves_no_worker(tmp_path: Path, demo_store: Path, daemons: list[Daemon],
                                                how: str) -> None:
    d = _start(tmp_path, demo_store, how=how)
    daemons.append(d)
    (worker,) = d.workers()
    r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
    assert r.returncode == 0 and NANCY in r.stdout, r.stderr
    code = d.stop()
    assert code == (0 if how == "serve" else -signal.SIGTERM), d.log
    assert not alive(worker)
    log = d.log
    assert "LDAP worker 1 stopped" in log and f"LDAP worker 1 (pid {worker}) stopped (exit status 0)" in log
    assert "abook stopped" in log and "Traceback" not in log and "alice-demo" not in log


def test_a_worker_stops_when_the_daemon_dies(tmp_path: Path, demo_store: Path, daemons: list[Daemon]) -> None:
    d = _start(tmp_path, demo_store)
    daemons.append(d)
    (worker,) = d.workers()
    os.kill(d.proc.pid, signal.SIGKILL)  # no stopService: the worker sees its pipe from the daemon close
    d.proc.wait(30)
    wait_until(lambda: not alive(worker), 30, "the orphaned worker to exit")


def test_one_worker_is_the_daemon_alone(tmp_path: Path, demo_store: Path, daemons: list[Daemon]) -> None:
    d = _start(tmp_path, demo_store, workers=1)
    daemons.append(d)
    r = ldapsearch(f"ldap://127.0.0.1:{d.port}")
    assert r.returncode == 0 and NANCY in r.stdout, r.stderr
    assert d.workers() == [] and "LDAP worker" not in d.log


def _allowed_cpus(pid: int) -> set[str]:
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
            if line.startswith("Cpus_allowed_list"):
                out.add(line.split(":", 1)[1].strip())
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_the_daemon_and_its_worker_each_run_on_a_cpu_of_their_own(tmp_path: Path, demo_store: Path,
                                                                   daemons: list[Daemon]) -> None:
    d = _start(tmp_path, demo_store)
    daemons.append(d)
    (worker,) = d.workers()
    parent_cpus, worker_cpus = _allowed_cpus(d.proc.pid), _allowed_cpus(worker)
    assert len(parent_cpus) == 1 and len(worker_cpus) == 1, (parent_cpus, worker_cpus)
    assert parent_cpus != worker_cpus and all(c.isdigit() for c in parent_cpus | worker_cpus)


def test_connections_are_spread_evenly_over_the_processes(tmp_path: Path, demo_store: Path,
                                                          daemons: list[Daemon]) -> None:
    """A client opening connections back to back (as a load test, or a mail client's pool, does): without
    balancing, the process that won the first accept won them all, and the other stayed idle."""
    import socket

    d = _start(tmp_path, demo_store)
    daemons.append(d)
    (worker,) = d.workers()
    for _round in range(3):
        socks = [socket.create_connection(("127.0.0.1", d.port)) for _ in range(8)]
        try:
            wait_until(lambda: established(d.proc.pid, d.port) + established(worker, d.port) == 8)
            by_parent, by_worker = established(d.proc.pid, d.port), established(worker, d.port)
            assert abs(by_parent - by_worker) <= 2, (by_parent, by_worker)
        finally:
            for s in socks:
                s.close()
        wait_until(lambda: established(d.proc.pid, d.port) + established(worker, d.port) == 0)
    conn = _ldap3(d.port)  # and they are served
    conn.bind()
    assert _nancy(conn) == ["Nancy Davolio"]
    conn.unbind()
