"""The daemons of a shared store: heartbeats written on the db pool, `abook status` listing each with the
mailbox leases it holds, a daemon that stopped or went silent shown as such."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from abook.cli import main
from abook.monitor.heartbeat import Heartbeat
from abook.store import Store, make_engine
from abook.store.daemons import HEARTBEAT_SECONDS, STALE_AFTER, Daemon, daemons_txn
from abook.store.models import MailboxState
from tests.helpers import success_result_of


def test_heartbeat_writes_its_row_every_interval_and_marks_the_stop(store: Store) -> None:
    clock = Clock()
    clock.advance(1_800_000_000)
    beat = Heartbeat(store, clock, "host-a:/etc/abook")
    beat.startService()
    rows = success_result_of(store.run(daemons_txn, datetime.now(timezone.utc)))
    assert [(d.id, d.host, d.pid, d.stopped_at) for d in rows] == [
        ("host-a:/etc/abook", socket.gethostname(), os.getpid(), None)]
    first = rows[0].heartbeat_at
    clock.advance(HEARTBEAT_SECONDS)
    (row,) = success_result_of(store.run(daemons_txn, datetime.now(timezone.utc)))
    assert row.heartbeat_at - first == timedelta(seconds=HEARTBEAT_SECONDS)
    assert row.started_at == first
    success_result_of(beat.stopService())
    (row,) = success_result_of(store.run(daemons_txn, datetime.now(timezone.utc)))
    assert row.stopped_at is not None and row.state(datetime.now(timezone.utc)) == "stopped"


def test_status_lists_every_daemon_with_its_leases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "abook.sqlite3"}"\n')
    assert main(["init", "-c", str(cfg)]) == 0
    assert main(["status", "-c", str(cfg)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "no daemon has run on this store"
    store = Store(make_engine(f"sqlite:///{tmp_path / 'abook.sqlite3'}"))
    now = datetime.now(timezone.utc).replace(microsecond=0)
    started = now - timedelta(hours=1)
    silent = now - timedelta(seconds=HEARTBEAT_SECONDS * STALE_AFTER + 60)
    with store.transaction() as s:
        s.add_all([
            Daemon(id="a:/etc/abook", host="a", pid=101, version="0.1.0", started_at=started, heartbeat_at=now),
            Daemon(id="b:/etc/abook", host="b", pid=202, version="0.1.0", started_at=started, heartbeat_at=silent),
            Daemon(id="c:/etc/abook", host="c", pid=303, version="0.1.0", started_at=started, heartbeat_at=started,
                   stopped_at=started),
        ])
        for name, holder, until in (("jane", "a:/etc/abook", now + timedelta(minutes=5)),
                                    ("support", "a:/etc/abook", now + timedelta(minutes=5)),
                                    ("bob", "b:/etc/abook", now - timedelta(minutes=1))):  # expired: not held
            s.add(MailboxState(name=name, kind="imap", lease_holder=holder, lease_until=until))
    store.dispose()
    capsys.readouterr()
    assert main(["status", "-c", str(cfg)]) == 0
    lines = capsys.readouterr().out.splitlines()
    table = lines[next(i for i, line in enumerate(lines) if line.startswith("DAEMON")):]
    when = started.strftime("%Y-%m-%d %H:%M:%S")
    assert [line.split("  ")[0] for line in table] == ["DAEMON", "a:/etc/abook", "b:/etc/abook", "c:/etc/abook"]
    assert table[1].split()[1:] == ["a", "101", *when.split(), *now.strftime("%Y-%m-%d %H:%M:%S").split(),
                                    "running", "2:", "jane,", "support"]
    assert table[2].split()[1:3] == ["b", "202"] and "SILENT for" in table[2] and table[2].endswith(" 0")
    assert table[3].split()[1:3] == ["c", "303"] and "stopped" in table[3]
