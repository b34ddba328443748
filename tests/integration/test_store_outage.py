"""The store going away is an answer, not a crash (issue 21 item 2; the faults review's cases 1a, 1b, 1d).

A real ``abook serve`` on a PostgreSQL of the test's own, which the test stops (fast shutdown) and freezes
(SIGSTOP of the postmaster and its backends) for real; ldap3 and OpenLDAP's ldapsearch as clients over
sockets, a fake IMAP server for the router. A stopped store answers binds and searches with unavailable
(52) at once and a frozen one within ``store.timeout_seconds``, while the root DSE keeps answering; the
outage is logged once and its end once; the router backs off and logs the store's error, not the one
its failed clean-up raised after it; no mail is lost.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from abook.store import Store, make_engine
from abook.store.models import Email
from tests.fakes.fault_server import message
from tests.fakes.imap_server import FakeImapServer
from tests.helpers import REPO, free_port, wait_for_port, wait_until

pytestmark = pytest.mark.slow

VENV_BIN = Path(sys.executable).parent
ABOOK = str(VENV_BIN / "abook")
DEMO = REPO / "ldif" / "demo.ldif"
SEARCH_BASE = "o=crm"
UNAVAILABLE, BUSY = 52, 51


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(REPO)}


class Daemon:
    def __init__(self, tmp: Path, url: str, tables: str = "", timeout: float | None = None) -> None:
        self.port = free_port()
        self.cfg = tmp / "abook.toml"
        self.log = tmp / "abook.log"
        store = f'url = "{url}"\n' + (f"timeout_seconds = {timeout}\n" if timeout is not None else "")
        self.cfg.write_text(f'[store]\n{store}[ldap]\nlisten = ["tcp:{self.port}:interface=127.0.0.1"]\n'
                            f'[logging]\nlevel = "info"\n' + tables)
        for args in (["init"], ["import", str(DEMO)]):
            r = subprocess.run([ABOOK, args[0], "-c", str(self.cfg), *args[1:]], capture_output=True, text=True,
                               env=_env(), timeout=120)
            assert r.returncode == 0, r.stdout + r.stderr
        self.proc = subprocess.Popen([ABOOK, "serve", "-c", str(self.cfg)], env=_env(), stdout=open(self.log, "w"),
                                     stderr=subprocess.STDOUT)
        wait_for_port(self.port, proc=self.proc)

    def text(self) -> str:
        return self.log.read_text()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # the daemon this test started, by its pid
            self.proc.wait(30)


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for d in started:
        d.stop()


def _connection(d: Daemon, user: str | None = None, password: str | None = None) -> Any:
    import ldap3

    server = ldap3.Server("127.0.0.1", port=d.port, get_info=ldap3.NONE, connect_timeout=5)
    return ldap3.Connection(server, user=user, password=password, raise_exceptions=False, receive_timeout=15)


def _timed(f: Any) -> tuple[Any, float]:
    start = time.monotonic()
    result = f()
    return result, time.monotonic() - start


def _search(conn: Any) -> int:
    conn.search(SEARCH_BASE, "(mail=nancy*)", attributes=["cn"])
    return conn.result["result"]


def _fresh_bind(d: Daemon) -> int:
    conn = _connection(d, "alice", "alice-demo")
    try:
        conn.bind()
        return conn.result["result"]
    finally:
        conn.unbind()


def _root_dse(d: Daemon) -> int:
    conn = _connection(d)
    try:
        conn.open()
        conn.search("", "(objectClass=*)", search_scope="BASE", attributes=["namingContexts"])
        return conn.result["result"]
    finally:
        conn.unbind()


def _ldapsearch(d: Daemon) -> int:
    """OpenLDAP's ldapsearch as alice: its exit code is the LDAP result code."""
    r = subprocess.run(["ldapsearch", "-x", "-H", f"ldap://127.0.0.1:{d.port}", "-D", "alice", "-w", "alice-demo",
                        "-b", SEARCH_BASE, "-o", "nettimeout=15", "-l", "15", "(mail=nancy*)", "cn"],
                       capture_output=True, text=True, timeout=30, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    return r.returncode


def _back(d: Daemon, conn: Any) -> bool:
    """Whether the store answers again: a fresh bind and a search on the long-lived connection succeed."""
    return _fresh_bind(d) == 0 and _search(conn) == 0


def _outage_logged_once(d: Daemon) -> None:
    log = d.text()
    assert log.count("the store is unavailable") == 1, log[-3000:]
    assert log.count("the store is back") == 1, log[-3000:]
    assert "Traceback" not in log and "internal error" not in log, log[-3000:]
    assert "alice-demo" not in log


def test_a_stopped_store_answers_unavailable_at_once_and_is_logged_once(tmp_path, private_postgres, daemons) -> None:
    """The review's 1a: every bind and search answered other (80) "internal error", with a CRITICAL
    traceback per request."""
    d = Daemon(tmp_path, private_postgres.create_database())
    daemons.append(d)
    conn = _connection(d, "alice", "alice-demo")
    assert conn.bind() and _search(conn) == 0 and len(conn.entries) >= 1
    private_postgres.stop()
    for _ in range(3):
        code, took = _timed(lambda: _fresh_bind(d))
        assert code in (UNAVAILABLE, BUSY) and took < 1.0, (code, took)
        code, took = _timed(lambda: _search(conn))
        assert code in (UNAVAILABLE, BUSY) and took < 1.0, (code, took)
        code, took = _timed(lambda: _ldapsearch(d))
        assert code in (UNAVAILABLE, BUSY) and took < 1.0, (code, took)
    assert _root_dse(d) == 0
    private_postgres.start()
    wait_until(lambda: _back(d, conn), 30, "binds and searches to succeed again")
    conn.unbind()
    _outage_logged_once(d)


def test_a_frozen_store_answers_within_the_timeout_while_the_root_dse_answers(tmp_path, private_postgres,
                                                                              daemons) -> None:
    """The review's 1d: with PostgreSQL frozen, binds and searches hung for the whole freeze (19.9 s)."""
    timeout = 1.5
    d = Daemon(tmp_path, private_postgres.create_database(), timeout=timeout)
    daemons.append(d)
    conn = _connection(d, "alice", "alice-demo")
    assert conn.bind() and _search(conn) == 0
    private_postgres.freeze()
    try:
        _frozen(d, conn, timeout)
    finally:
        private_postgres.thaw()
    wait_until(lambda: _back(d, conn), 30, "binds and searches to succeed again")
    conn.unbind()
    _outage_logged_once(d)


def _frozen(d: Daemon, conn: Any, timeout: float) -> None:
    code, took = _timed(lambda: _root_dse(d))
    assert code == 0 and took < 1.0, (code, took)
    bound = timeout + 1.5  # the deadline, and a loaded machine's slack
    for _ in range(2):
        code, took = _timed(lambda: _search(conn))
        assert code in (UNAVAILABLE, BUSY) and took < bound, (code, took)
        code, took = _timed(lambda: _fresh_bind(d))
        assert code in (UNAVAILABLE, BUSY) and took < bound, (code, took)
    code, took = _timed(lambda: _ldapsearch(d))
    assert code in (UNAVAILABLE, BUSY) and took < bound, (code, took)
    code, took = _timed(lambda: _root_dse(d))
    assert code == 0 and took < 1.0, (code, took)


# -- the router ------------------------------------------------------------------------------------------


def _mailbox(port: int) -> str:
    return ('[router]\nmax_backoff = 4\n[[mailboxes]]\nname = "jane"\ntype = "imap"\nowner = "alice"\n'
            f'host = "127.0.0.1"\nport = {port}\nsecurity = "none"\nusername = "jane"\npassword = "pw-jane"\n'
            "interval = 0.25\ntimeout = 5.0\n")


def _mail(n: int) -> bytes:
    """A message from a demo contact to alice, about 700 bytes."""
    return message(n, sender="nancy.davolio@northwind.example", to="alice@example.com", body=b"hello\r\n" * 70)


def _poll_failures(log: str) -> list[str]:
    return [line for line in log.splitlines() if "poll of jane failed" in line]


def test_the_router_backs_off_while_the_store_is_down_and_logs_the_real_error(tmp_path, private_postgres,
                                                                              daemons) -> None:
    """The review's 1b and case 2's note: polls failed every interval with two CRITICAL tracebacks each, and
    the first traceback was the lease release's from the poll's ``finally``, not the error that failed the
    poll. Here the store goes away while a message is being downloaded, and then the mailbox connection
    drops: the poll failed because of the mailbox, and the release that fails after it must not say otherwise."""
    imap = FakeImapServer().start()
    try:
        url = private_postgres.create_database()
        d = Daemon(tmp_path, url, _mailbox(imap.port))
        daemons.append(d)
        imap.deliver(_mail(0))
        store = Store(make_engine(url))
        wait_until(lambda: all("$CRMTracked" in f for f in imap.flags().values()), 30, "the first message marked")
        imap.trickle = (40, 0.2)  # the next message is read slowly, so that things can go wrong meanwhile
        imap.deliver(_mail(1))
        imap.wait_for(lambda: imap.count("FETCH body uid 2") == 1, what="the second message's download")
        private_postgres.stop()
        imap.drop_connections()
        wait_until(lambda: len(_poll_failures(d.text())) >= 4, 60, "four failed polls")
        log = d.text()
        failures = _poll_failures(log)
        assert "Unavailable: jane" in failures[0] and "StoreOutage" not in failures[0], failures[0]
        assert all("StoreOutage" in f and "Connection refused" in f for f in failures[1:]), failures
        assert "Traceback" not in log and "recording the failure" not in log, log[-4000:]
        assert log.count("the store is unavailable") == 1
        delays = [float(x) for x in re.findall(r"backing off jane for (\d+)s", log)]
        assert len(delays) >= 4 and delays[-1] >= 2, delays  # growing, not a poll every interval
        assert imap.count("FETCH body uid 2") == 1  # nothing read again while the store cannot take it
        imap.trickle = None
        private_postgres.start()
        wait_until(lambda: all("$CRMTracked" in f for f in imap.flags().values()), 30, "the second message marked")
        with store.transaction() as s:
            assert s.scalar(select(func.count()).select_from(Email)) == 2  # each tracked once, none lost
        assert d.text().count("the store is back") == 1
        store.dispose()
    finally:
        imap.stop()
