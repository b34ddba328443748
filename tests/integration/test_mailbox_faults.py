"""A real ``abook serve`` against hostile or broken IMAP servers (tests/fakes/imap_server.py, real sockets):
the cases of the faults review (2026-12-07). No mailbox wedges: a mark lost before a UIDVALIDITY change is
found again by its Message-ID; a mailbox that keeps failing backs off, alerts and shows in ``abook status``."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
from sqlalchemy import func, select

from abook.store import Store
from abook.store.models import Email, EmailSighting, MailboxState
from tests.fakes.fault_server import message
from tests.fakes.imap_server import FakeImapServer
from tests.helpers import wait_until
from tests.integration.test_router_imap import ABOOK, _env, _init, _serve, _stop
from tests.unit.routing.conftest import seed_org
from tests.unit.routing.test_poller import _state as state_of

pytestmark = pytest.mark.slow


def fake_mailbox(name: str, port: int, kind: str = "imap", **extra: Any) -> str:
    values = {"name": name, "type": kind, "owner": "jane.doe", "host": "127.0.0.1", "port": port,
              "security": "none", "username": "jane", "password": "pw-jane", "interval": 0.3, "timeout": 5.0, **extra}
    lines = []
    for k, v in values.items():
        text = ("true" if v else "false") if isinstance(v, bool) else f'"{v}"' if isinstance(v, str) else str(v)
        lines.append(f"{k} = {text}\n")
    return "[[mailboxes]]\n" + "".join(lines)


@pytest.fixture
def imap() -> Iterator[FakeImapServer]:
    server = FakeImapServer().start()
    yield server
    server.stop()


def tracked(store: Store, mailbox: str) -> tuple[int, int, int]:
    """(emails, distinct Message-IDs, marked sightings in ``mailbox``)."""
    with store.transaction() as s:
        return (s.scalar(select(func.count()).select_from(Email)) or 0,
                s.scalar(select(func.count(func.distinct(Email.message_id)))) or 0,
                s.scalar(select(func.count()).select_from(EmailSighting).where(
                    EmailSighting.mailbox == mailbox, EmailSighting.marked.is_(True))) or 0)


def polled(store: Store, name: str) -> bool:
    """Whether the mailbox has been polled successfully once."""
    with store.transaction() as s:
        row = s.get(MailboxState, name)
        return row is not None and row.last_success_at is not None


def status_line(cfg: Path, name: str) -> str:
    out = subprocess.run([ABOOK, "status", "-c", str(cfg)], capture_output=True, text=True, env=_env(), check=True)
    return next(line for line in out.stdout.splitlines() if line.startswith(name + " "))


def test_a_mark_lost_before_a_uidvalidity_change_is_found_again_by_message_id(tmp_path, imap) -> None:
    """The review's 4d+e: the connection drops on the first mark (after the commit) and the folder is rebuilt
    before the next connection. The mailbox used to re-mark the old UIDs, fail with CursorInvalid and reset
    its cursor every interval, forever, never reading new mail."""
    for n in range(3):
        imap.deliver(message(n))
    imap.fail("STORE", then=imap.bump_validity)
    cfg, store = _init(tmp_path, fake_mailbox("jane", imap.port))
    seed_org(store)
    daemon = _serve(cfg, tmp_path / "run.log")
    try:
        imap.wait_for(lambda: imap.count("drop before STORE") == 1, what="the mark to be dropped")
        wait_until(lambda: tracked(store, "jane") == (3, 3, 3), timeout=30, what="3 messages tracked once and marked")
        assert all("$CRMTracked" in f for f in imap.flags().values())
        imap.deliver(message(3))  # and new mail is read again
        wait_until(lambda: tracked(store, "jane") == (4, 4, 4), timeout=30, what="new mail tracked and marked")
        wait_until(lambda: state_of(store, "jane").last_error is None, timeout=30, what="the mailbox to recover")
    finally:
        _stop(daemon)
    assert all("$CRMTracked" in f for f in imap.flags().values())
    row = state_of(store, "jane")
    assert (row.cursor, row.failures_in_row, row.messages_tracked) == ("1001:4", 0, 4)
    with store.transaction() as s:  # the sightings follow the messages to their new UIDs
        assert sorted(s.scalars(select(EmailSighting.external_id))) == ["1001:1", "1001:2", "1001:3", "1001:4"]
    log = (tmp_path / "run.log").read_text()
    assert "1000:1 found again by its Message-ID as UID 1" in log
    assert log.count("is no longer valid, reading it again") == 1


def test_a_mailbox_that_keeps_failing_backs_off_alerts_and_shows_in_status(tmp_path, imap) -> None:
    """The review's 4e': UIDVALIDITY changes on every SELECT. Each poll reset the cursor and re-read the
    folder, every interval, without a back-off or an alert."""
    imap.deliver(message(1))
    imap.bump_every_select = True
    cfg, store = _init(tmp_path, fake_mailbox("every", imap.port) + "[router]\nmax_backoff = 1.0\n")
    seed_org(store)
    daemon = _serve(cfg, tmp_path / "run.log")
    log = tmp_path / "run.log"
    try:
        wait_until(lambda: "ALERT: 5 polls of mailbox every failed in a row" in log.read_text(), timeout=60,
                   what="the alert (alert_after_failures = 5)")
        wait_until(lambda: "FAILING" in status_line(cfg, "every"), timeout=30, what="abook status to show it")
        line = status_line(cfg, "every")
        assert "yes, FAILING (" in line and "polls in a row)" in line and "CursorInvalid" in line, line
    finally:
        _stop(daemon)
    text = log.read_text()
    assert "backing off every for 1s" in text
    assert tracked(store, "every") == (1, 1, 1)  # tracked once all along
