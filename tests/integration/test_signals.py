"""Signals against a real ``abook serve`` with an LDAP worker (``ldap.workers = 2``), in its own process
group as under a terminal or systemd: SIGHUP reopens the log after logrotate moved it and reloads the
logging level and the mailboxes; SIGTERM or SIGINT twice (Ctrl-C twice) stops it once, cleanly.
SIGKILL's guarantees are the existing tests': tests/integration/test_router_imap.py kills the daemon at
every step of a poll, tests/integration/test_ldap_workers.py kills a worker and the daemon."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Iterator

import pytest

from tests.fakes.fault_server import message
from tests.fakes.imap_server import FakeImapServer
from tests.helpers import free_port, port_answers, wait_until
from tests.integration.test_mailbox_faults import fake_mailbox, tracked
from tests.integration.test_router_imap import ABOOK, _env
from abook.store import Store, make_engine
from tests.unit.routing.conftest import seed_org

pytestmark = pytest.mark.slow


@pytest.fixture
def imap() -> Iterator[FakeImapServer]:
    server = FakeImapServer().start()
    yield server
    server.stop()


def write_config(tmp_path: Path, port: int, body: str) -> Path:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n'
                   f'[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\nworkers = 2\n' + body)
    return cfg


def start(tmp_path: Path, body: str) -> tuple[Path, Store, subprocess.Popen, int]:
    """``abook serve`` in a process group of its own, logging to tmp_path/abook.log, once its worker serves."""
    port = free_port()
    cfg = write_config(tmp_path, port, body)
    subprocess.run([ABOOK, "init", "-c", str(cfg)], check=True, capture_output=True, env=_env())
    store = Store(make_engine(f"sqlite:///{tmp_path / 'var' / 'abook.sqlite3'}"))
    seed_org(store)
    daemon = subprocess.Popen([ABOOK, "serve", "-c", str(cfg)], env=_env(), stdout=subprocess.DEVNULL,
                              stderr=open(tmp_path / "stderr.txt", "w"), start_new_session=True)
    log = tmp_path / "abook.log"
    wait_until(lambda: log.exists() and "LDAP worker 1 serving" in log.read_text(), timeout=60,
               what="the daemon and its worker")
    return cfg, store, daemon, port


def worker_pid(log: Path) -> int:
    return int(re.search(r"started LDAP worker 1 \(pid (\d+)\)", log.read_text()).group(1))  # type: ignore[union-attr]


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"


def stop(daemon: subprocess.Popen) -> None:
    if daemon.poll() is None:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)


def test_sighup_reopens_the_log_and_reloads_logging_and_mailboxes(tmp_path, imap) -> None:
    other = FakeImapServer().start()
    try:
        imap.deliver(message(1, tag="a"))
        logging = f'[logging]\nfile = "{tmp_path / "abook.log"}"\nlevel = "info"\n'
        cfg, store, daemon, port = start(tmp_path, logging + fake_mailbox("a", imap.port))
        log, rotated = tmp_path / "abook.log", tmp_path / "abook.log.1"
        try:
            wait_until(lambda: tracked(store, "a")[2] == 1, timeout=30, what="mailbox a read")
            worker = worker_pid(log)
            log.rename(rotated)  # logrotate; then its postrotate: kill -HUP, here to the whole process group
            other.deliver(message(2, tag="b"))
            cfg.write_text(cfg.read_text().replace('level = "info"', 'level = "debug"')
                           .replace("workers = 2", "workers = 2\nanonymous_books = [\"Contacts\"]")
                           + fake_mailbox("b", other.port))
            os.killpg(daemon.pid, signal.SIGHUP)
            wait_until(lambda: log.exists() and "Received SIGHUP: reopened" in log.read_text(), timeout=30,
                       what="the new log file and the reload line")
            wait_until(lambda: tracked(store, "b")[2] == 1, timeout=30, what="the added mailbox read")
            assert port_answers(port) and daemon.poll() is None and alive(worker)
            # relayed by the daemon, into the old file or the new one: the worker's signal may come first
            wait_until(lambda: "an LDAP worker has nothing to reload" in log.read_text() + rotated.read_text(),
                       timeout=30, what="the worker's line")
        finally:
            stop(daemon)
    finally:
        other.stop()
    assert daemon.returncode == 0
    text = log.read_text()
    line = next(line for line in text.splitlines() if "Received SIGHUP: reopened" in line)
    assert f"reopened {log}; logging level debug, file {log}; mailboxes: 1 added, 0 removed, 0 changed; " \
           "changes that wait for a restart: ldap" in line
    assert "[abook.mailbox.imap.ImapSource#debug]" in text  # the new level is in force
    assert "Received SIGHUP: reopened" not in rotated.read_text() and "abook started" in rotated.read_text()
    assert "abook stopped" in text and "Traceback" not in text


@pytest.mark.parametrize("name", ["SIGTERM", "SIGINT"])
def test_a_second_stop_signal_while_stopping_is_clean(tmp_path, imap, name) -> None:
    """SIGTERM twice to the daemon (an impatient admin), SIGINT twice to the whole group (Ctrl-C twice).
    A download in hand keeps the stop going for a few seconds when the second signal comes."""
    imap.deliver(message(1, body=b"x" * 300 + b"\r\n"))
    imap.trickle = (20, 0.5)  # about 12 s for the whole message
    logging = f'[logging]\nfile = "{tmp_path / "abook.log"}"\n'
    _, _, daemon, _ = start(tmp_path, logging + fake_mailbox("slow", imap.port))
    log = tmp_path / "abook.log"
    number = getattr(signal, name)
    send = (lambda: daemon.send_signal(number)) if name == "SIGTERM" else (lambda: os.killpg(daemon.pid, number))
    try:
        imap.wait_for(lambda: imap.count("FETCH body") >= 1, what="the download in hand")
        send()
        wait_until(lambda: f"Received {name}, shutting down." in log.read_text(), timeout=30, what="the stop")
        send()
        assert daemon.wait(timeout=30) == 0
    finally:
        stop(daemon)
    text = log.read_text()
    assert f"Received {name} again: abook is already stopping" in text
    assert "abook stopped" in text and "Traceback" not in text and "Unhandled" not in text
    assert (tmp_path / "stderr.txt").read_text() == ""
