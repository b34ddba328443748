"""The router inside the real daemon: ``abook serve`` sends Pending Send email to a real SMTP server, and
``abook status`` / ``abook mailbox enable`` / ``abook outgoing ...`` show and fix what the router left."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import update

from abook.cli import main
from abook.config.model import TrackingConfig
from abook.routing.outgoing import claim_txn
from abook.store import Store, make_engine
from abook.store.models import Email, EmailStatus, MailboxState
from tests.helpers import free_port, wait_until
from tests.integration.test_outgoing_smtp import email_row, pending_email
from tests.unit.routing.conftest import seed_org

ABOOK = str(Path(sys.executable).parent / "abook")
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")


def _init(tmp_path: Path, extra: str = "") -> tuple[Path, Store]:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n'
                   f'[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n' + extra)
    subprocess.run([ABOOK, "init", "-c", str(cfg)], check=True, capture_output=True)
    return cfg, Store(make_engine(f"sqlite:///{tmp_path / 'var' / 'abook.sqlite3'}"))


def _abook(capsys: pytest.CaptureFixture[str], *args: str) -> subprocess.CompletedProcess:
    """The command line's own entry point, in this process (a subprocess per command costs seconds)."""
    code = main(list(args))
    out = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out.out, out.err)


def test_serve_sends_pending_email_over_starttls(tmp_path: Path, smtp_server) -> None:
    server = smtp_server("starttls")
    cfg, store = _init(tmp_path, (
        f'[router]\noutgoing_interval = 0.2\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = {server.port}\nsecurity = "starttls"\nca_file = "{server.ca_file}"\n'
        f'username = "{server.username}"\npassword = "{server.password}"\n'))
    org = seed_org(store)
    activity_id = pending_email(store, org)
    daemon = subprocess.Popen([ABOOK, "serve", "-c", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True)
    try:
        wait_until(lambda: email_row(store, activity_id)[0].statuscode_cache == EmailStatus.sent, timeout=60,
                   what="the email to be sent")
    finally:
        daemon.send_signal(signal.SIGTERM)
        log, _ = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, log
    email, _ = email_row(store, activity_id)
    assert [r.data for r in server.received] == [email.raw]
    assert f"sent email {activity_id} as <{email.message_id}> to 3 recipients" in log
    assert server.password not in log
    store.dispose()


def test_status_enable_and_stuck_email_commands(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, store = _init(tmp_path, '[[mailboxes]]\nname = "jane"\ntype = "imap"\nowner = "jane.doe"\n'
                                 '[[mailboxes]]\nname = "fwd"\ntype = "pop3"\nrole = "forward"\n')
    org = seed_org(store)
    stuck = pending_email(store, org, subject="Stuck one")
    failed = pending_email(store, org, subject="Doomed")
    with store.transaction() as s:
        s.add(MailboxState(name="jane", kind="imap", owner_type="systemuser", owner_id=org.jane, enabled=False,
                           consecutive_failures=3, last_error="AuthFailed: authentication failed",
                           messages_tracked=7, last_poll_at=datetime(2026, 12, 2, 9, 0, tzinfo=timezone.utc)))
        claim_txn(s, datetime.now(timezone.utc), 1, TrackingConfig())
        s.execute(update(Email).where(Email.activity_id == failed).values(statuscode_cache=EmailStatus.failed))
    r = _abook(capsys, "status", "-c", str(cfg))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["MAILBOX", "KIND", "OWNER", "ENABLED", "LAST", "POLL", "LAST", "SUCCESS", "TRACKED",
                                "LAST", "ERROR"]
    assert lines[1].split()[:4] == ["fwd", "forward", "-", "yes"] and lines[1].endswith("never polled")
    assert lines[2].split()[:5] == ["jane", "imap", "jane.doe", "NO", "(3"]
    assert lines[2].split()[6:] == ["2026-12-02", "09:00:00", "-", "7", "AuthFailed:", "authentication", "failed"]
    assert "outgoing: 0 pending send, 1 sending, 1 failed" in r.stdout
    assert f"found in sending, check then `abook outgoing retry|fail`: {stuck} Stuck one" in r.stdout

    assert _abook(capsys, "outgoing", "stuck", "-c", str(cfg)).stdout.startswith(f"{stuck}  attempts=0  Stuck one")
    r = _abook(capsys, "outgoing", "fail", stuck, "-c", str(cfg))
    assert (r.returncode, r.stdout.strip()) == (0, f"email {stuck}: failed")
    r = _abook(capsys, "outgoing", "retry", stuck, "-c", str(cfg))
    assert (r.returncode, r.stderr.strip()) == (2, f"abook: no email {stuck} in sending")

    r = _abook(capsys, "mailbox", "enable", "jane", "-c", str(cfg))
    assert r.returncode == 0 and "mailbox jane enabled" in r.stdout
    assert _abook(capsys, "status", "-c", str(cfg)).stdout.splitlines()[2].split()[3] == "yes"
    r = _abook(capsys, "mailbox", "enable", "nope", "-c", str(cfg))
    assert (r.returncode, r.stderr.strip()) == (2, "abook: no mailbox named 'nope' has been polled")
    store.dispose()
