"""Kill the router at every step of a poll, restart it: every message is tracked exactly once, and marked.

The daemon (a real process, real reactor and thread pools) polls a mailbox kept in a directory;
``ABOOK_TEST_CRASH_AT`` makes it ``os._exit(1)`` after the fetch, after the commit, before the mark or
after the mailbox mark (before the sighting is marked). A second run without the hook must finish the
job: no message lost, none tracked twice, every one marked in the mailbox and in the store.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import func, select

from abook.store import Store, make_engine, schema
from abook.store.models import Email, EmailSighting, MailboxState
from tests.fakes.mail_source import DirMailSource
from tests.helpers import REPO, wait_until
from tests.unit.routing.conftest import message, seed_org

MESSAGES = 5


def _setup(tmp_path: Path) -> tuple[Path, Store, DirMailSource]:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(
        f'[store]\ndata_dir = "{tmp_path / "var"}"\n'
        '[[mailboxes]]\nname = "jane"\ntype = "imap"\nowner = "jane.doe"\ninterval = 0.2\nbatch_size = 2\n'
    )
    store = Store(make_engine(f"sqlite:///{tmp_path / 'var' / 'abook.sqlite3'}"))
    schema.upgrade(store.engine)
    seed_org(store)
    box = DirMailSource(tmp_path / "mail" / "jane")
    for n in range(MESSAGES):
        box.deliver(message(n))
    return cfg, store, box


def _run(cfg: Path, tmp_path: Path, crash_at: str | None, log_name: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "ABOOK_TEST_CRASH_AT"}
    if crash_at:
        env["ABOOK_TEST_CRASH_AT"] = crash_at
    log = open(tmp_path / log_name, "w")
    return subprocess.Popen([sys.executable, "-m", "tests.integration.router_runner", str(cfg),
                             str(tmp_path / "mail")], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)


def _counts(store: Store) -> tuple[int, int, int]:
    with store.transaction() as s:
        emails = s.scalar(select(func.count()).select_from(Email)) or 0
        marked = s.scalar(select(func.count()).select_from(EmailSighting).where(EmailSighting.marked.is_(True))) or 0
        ids = s.scalar(select(func.count(func.distinct(Email.message_id)))) or 0
    return emails, marked, ids


@pytest.mark.slow
@pytest.mark.parametrize("step", ["after_fetch", "after_commit", "before_mark", "after_mark"])
def test_killed_at_each_step_then_restarted_tracks_each_message_exactly_once(tmp_path: Path, step: str) -> None:
    cfg, store, box = _setup(tmp_path)
    crashed = _run(cfg, tmp_path, step, "crash.log")
    assert crashed.wait(timeout=60) == 1, (tmp_path / "crash.log").read_text()
    emails, marked, _ = _counts(store)
    # what the crash left: nothing committed before the commit; the first batch (2) committed after it
    assert emails == (0 if step == "after_fetch" else 2)
    assert marked == 0
    assert not any(box.is_tracked(u) for u in box.uids()[2:])

    daemon = _run(cfg, tmp_path, None, "run.log")
    try:
        wait_until(lambda: _counts(store)[1] == MESSAGES and all(box.is_tracked(u) for u in box.uids()),
                   timeout=60, what="every message tracked and marked")
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
    emails, marked, distinct = _counts(store)
    assert (emails, marked, distinct) == (MESSAGES, MESSAGES, MESSAGES)
    with store.transaction() as s:
        row = s.get(MailboxState, "jane")
        assert row is not None
        assert (row.cursor, row.messages_tracked, row.lease_holder) == (str(MESSAGES), MESSAGES, None)
    log = (tmp_path / "run.log").read_text()
    assert "abook stopped" in log
    if step in ("before_mark", "after_mark"):
        assert "re-marking 2 messages of jane left unmarked" in log
    store.dispose()
