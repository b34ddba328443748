"""The router in the real daemon (``abook serve``) against a real Dovecot: IMAP and POP3 mailboxes, the
forward mailbox, a broken mailbox and outgoing SMTP, and a daemon killed at every step of a poll."""

from __future__ import annotations

import imaplib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from abook.store import Store, make_engine
from abook.store.models import Email, EmailSighting, EmailStatus, MailboxState, UntrackedMessage
from tests.contract.harness import DovecotHarness
from tests.helpers import REPO, free_port, wait_until
from tests.integration.test_outgoing_smtp import email_row, pending_email
from tests.unit.routing.conftest import message, seed_org
from tests.unit.routing.test_forward import wrapper

ABOOK = str(Path(sys.executable).parent / "abook")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def _env(crash_at: str | None = None) -> dict[str, str]:
    """This checkout's abook (not another one the venv may point at), with the test-only crash hook."""
    env = {k: v for k, v in os.environ.items() if k != "ABOOK_TEST_CRASH_AT"}
    env["PYTHONPATH"] = str(REPO)
    if crash_at:
        env["ABOOK_TEST_CRASH_AT"] = crash_at
    return env


def _mailbox_toml(name: str, h: DovecotHarness, **extra: Any) -> str:
    c = h.config()
    values = {"name": name, "type": h.kind, "host": "127.0.0.1", "port": c.port, "security": h.security,
              "ca_file": h.server.ca_file, "username": h.user, "password": h.password, "interval": 0.3, **extra}
    body = "".join(f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str) else f"{k} = {v}\n"
                   for k, v in values.items())
    return "[[mailboxes]]\n" + body


def _init(tmp_path: Path, tables: str) -> tuple[Path, Store]:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n'
                   f'[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n' + tables)
    subprocess.run([ABOOK, "init", "-c", str(cfg)], check=True, capture_output=True, env=_env())
    store = Store(make_engine(f"sqlite:///{tmp_path / 'var' / 'abook.sqlite3'}"))
    return cfg, store


def _serve(cfg: Path, log: Path, crash_at: str | None = None) -> subprocess.Popen:
    return subprocess.Popen([ABOOK, "serve", "-c", str(cfg)], env=_env(crash_at), stdout=open(log, "w"),
                            stderr=subprocess.STDOUT)


def _stop(daemon: subprocess.Popen) -> None:
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=30) == 0


def _inbox(h: DovecotHarness) -> dict[int, bytes]:
    """UID -> FLAGS of every message in the user's INBOX, as a second IMAP client sees it."""
    conn = h.imap()
    try:
        conn.select("INBOX", readonly=True)
        _, data = conn.uid("SEARCH", "ALL")
        if not data[0]:
            return {}
        _, data = conn.uid("FETCH", "1:*", "(FLAGS)")
        out = {}
        for line in data:
            m = re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line if isinstance(line, bytes) else line[0])
            if m:
                out[int(m.group(1))] = m.group(2)
        return out
    finally:
        conn.logout()


def _counts(store: Store) -> tuple[int, int]:
    with store.transaction() as s:
        return (s.scalar(select(func.count()).select_from(Email)) or 0,
                s.scalar(select(func.count()).select_from(EmailSighting).where(EmailSighting.marked.is_(True))) or 0)


@pytest.mark.slow
@pytest.mark.parametrize("step", ["after_fetch", "after_commit", "before_mark", "after_mark"])
def test_daemon_killed_at_each_step_tracks_each_imap_message_exactly_once(tmp_path, dovecot_server, step) -> None:
    h = DovecotHarness(dovecot_server, "imap", "tls")
    cfg, store = _init(tmp_path, _mailbox_toml("jane", h, owner="jane.doe", batch_size=2))
    seed_org(store)
    for n in range(5):
        h.deliver(message(n))
    crashed = _serve(cfg, tmp_path / "crash.log", crash_at=step)
    assert crashed.wait(timeout=60) == 1, (tmp_path / "crash.log").read_text()
    assert _counts(store) == ((0 if step == "after_fetch" else 2), 0)
    daemon = _serve(cfg, tmp_path / "run.log")
    try:
        wait_until(lambda: _counts(store) == (5, 5), timeout=60, what="5 messages tracked and marked")
        wait_until(lambda: all(b"$CRMTracked" in f for f in _inbox(h).values()), timeout=30,
                   what="every message to carry the tracked keyword")
    finally:
        _stop(daemon)
    flags = _inbox(h)
    assert len(flags) == 5 and all(b"\\Seen" not in f for f in flags.values())  # marked, still unread
    with store.transaction() as s:
        assert s.scalar(select(func.count(func.distinct(Email.message_id)))) == 5
        row = s.get(MailboxState, "jane")
        assert (row.messages_tracked, row.lease_holder, row.last_error) == (5, None, None)
        assert row.cursor.endswith(":5")


@pytest.mark.slow
def test_forward_mailbox_broken_mailbox_and_outgoing_in_one_daemon(tmp_path, dovecot_server, smtp_server) -> None:
    jane = DovecotHarness(dovecot_server, "pop3", "starttls")
    fwd = DovecotHarness(dovecot_server, "imap", "starttls")
    broken = DovecotHarness(dovecot_server, "imap", "tls")
    broken.password = "not-the-password"
    smtp = smtp_server("starttls")
    cfg, store = _init(tmp_path, (
        _mailbox_toml("jane", jane, owner="jane.doe")
        + _mailbox_toml("forward", fwd, role="forward")
        + _mailbox_toml("broken", broken, owner="jane.doe")
        + "[router]\ndisable_after_failures = 2\noutgoing_interval = 0.3\n"
        + f'[smtp]\nhost = "127.0.0.1"\nport = {smtp.port}\nsecurity = "starttls"\nca_file = "{smtp.ca_file}"\n'
          f'username = "{smtp.username}"\npassword = "{smtp.password}"\n'))
    org = seed_org(store)
    jane.deliver(message(1))
    fwd.deliver(wrapper("Bob <bob@example.com>", message(2, to="bob@example.com")))
    fwd.deliver(wrapper("stranger@elsewhere.test", message(3, to="someone@elsewhere.test")))
    outgoing = pending_email(store, org)
    daemon = _serve(cfg, tmp_path / "run.log")

    def settled() -> bool:
        with store.transaction() as s:
            disabled = s.get(MailboxState, "broken")
            return (_counts(store) == (3, 2) and disabled is not None and not disabled.enabled
                    and email_row(store, outgoing)[0].statuscode_cache == EmailStatus.sent
                    and len(_inbox(fwd)) == 1)
    try:
        wait_until(settled, timeout=60, what="mail tracked, wrapper removed, broken mailbox disabled, email sent")
    finally:
        _stop(daemon)
    with store.transaction() as s:
        rows = s.execute(select(Email.message_id, Email.accepting_id, EmailSighting.mailbox, EmailSighting.arrival)
                         .join(EmailSighting, EmailSighting.email_id == Email.activity_id)
                         .where(Email.statuscode_cache == EmailStatus.received).order_by(Email.message_id)).all()
        assert [tuple(r) for r in rows] == [("m1.carl@customer.test@test", org.jane, "jane", "router"),
                                            ("m2.carl@customer.test@test", org.bob, "forward", "forward")]
        reasons = s.execute(select(UntrackedMessage.mailbox, UntrackedMessage.reason)).all()
        assert [tuple(r) for r in reasons] == [("forward", "no_owner")]
    assert len(smtp.received) == 1 and smtp.received[0].data == email_row(store, outgoing)[0].raw
    assert jane.pop3_uidls() != []  # POP3: left on the server
    status = subprocess.run([ABOOK, "status", "-c", str(cfg)], capture_output=True, text=True, env=_env()).stdout
    lines = {line.split()[0]: line for line in status.splitlines()[1:4]}
    assert lines["broken"].split()[3:6] == ["NO", "(2", "failures)"] and "AuthFailed" in lines["broken"]
    assert lines["forward"].split()[1:4] == ["forward", "-", "yes"]
    assert lines["jane"].split()[1:4] == ["pop3", "jane.doe", "yes"]
    assert "outgoing: 0 pending send, 0 sending, 0 failed" in status
    untracked = subprocess.run([ABOOK, "untracked", "-c", str(cfg)], capture_output=True, text=True,
                               env=_env()).stdout
    assert "no_owner" in untracked and "forward" in untracked
    log = (tmp_path / "run.log").read_text()
    assert "ALERT: mailbox broken disabled after 2 failures" in log
    assert broken.password not in log and smtp.password not in log
