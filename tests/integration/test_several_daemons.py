"""Three real ``abook serve`` daemons on one private PostgreSQL, polling the same Dovecot mailboxes and
syncing the same users to Radicale. One is killed with SIGKILL while it holds a mailbox lease and a sync
lease; its leases run out and the others take its work over: every message is tracked exactly once and
every user's address book converges, with no duplicate in the store or on the DAV server."""

from __future__ import annotations

import re
import signal
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select

from abook.store import Store, make_engine
from abook.store.models import (BusinessUnit, Contact, Email, EmailSighting, MailboxState, ReadDepth, Role,
                                RolePrivilege, SystemUser)
from abook.store.sync_leases import SyncLease
from abook.store.sync_links import SyncIssue, SyncLink, SyncState
from tests.contract.harness import DovecotHarness
from tests.fixtures.postgres import PrivatePostgres
from tests.fixtures.radicale import Radicale
from tests.helpers import free_port, wait_until
from tests.integration.test_router_imap import ABOOK, _env, _mailbox_toml
from tests.unit.routing.conftest import message, seed_org

MAILBOXES, MESSAGES = 3, 12
USERS, CONTACTS = 3, 25  # contacts per user (each sees their own)
LEASE = 3  # seconds, router and sync: a dead daemon's work moves within the test


def _seed_sync_users(store: Store, radicale: Radicale, passwords: Path) -> list[str]:
    """USERS users with sync enabled (named as their Radicale account), each owning CONTACTS contacts."""
    names = []
    with store.transaction() as s:
        unit = s.scalars(select(BusinessUnit)).first()
        role = Role(name="Everything")
        s.add(role)
        s.flush()
        s.add(RolePrivilege(role_id=role.id, entity="contact", read_depth=int(ReadDepth.organisation)))
        for _ in range(USERS):
            name, password = radicale.new_user()
            (passwords / name).write_text(password)
            user = SystemUser(domainname=name, fullname=name.title(), internalemailaddress=f"{name}@example.com",
                              business_unit_id=unit.id, statecode=0, sync_enabled=True)
            user.roles.append(role)
            s.add(user)
            s.flush()
            names.append(name)
            for i in range(CONTACTS):
                s.add(Contact(firstname=f"First{i}", lastname=name, fullname=f"First{i} {name}", statecode=0,
                              emailaddress1=f"c{i}.{name}@example.org", owner_id=user.id,
                              owningbusinessunit_id=unit.id))
    return names


def _config(tmp: Path, index: int, pg_url: str, mailboxes: str, radicale: Radicale, passwords: Path) -> Path:
    cfg = tmp / f"abook{index}.toml"
    cfg.write_text(
        f'[store]\nurl = "{pg_url}"\ndata_dir = "{tmp / f"var{index}"}"\n'
        f'[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n'
        f'[router]\ndaemon_id = "d{index}"\nlease_seconds = {LEASE}\n'
        f'[sync]\nenabled = true\ninterval = 2\nrescan_interval = 1\nlease_seconds = {LEASE}\n'
        f'entities = ["contact"]\n'
        f'[sync.mailbox]\ntype = "dav"\ncontacts_url = "{radicale.url}/{{user}}/contacts/"\n'
        f'password_dir = "{passwords}"\n' + mailboxes)
    return cfg


def _dav_crm_ids(radicale: Radicale, user: str, password: str) -> list[str]:
    """The X-ABOOK-CRMID of every card in the user's address book, as another DAV client reads them (a GET of
    a Radicale address book answers every card in it)."""
    r = requests.get(f"{radicale.url}/{user}/contacts/", auth=(user, password), timeout=10)
    if r.status_code == 404:
        return []
    r.raise_for_status()
    assert r.text.count("BEGIN:VCARD") == len(re.findall(r"^X-ABOOK-CRMID:", r.text, flags=re.M))
    return re.findall(r"^X-ABOOK-CRMID:([\w-]+)\r?$", r.text, flags=re.M)


def _tracked(store: Store) -> tuple[int, int, int]:
    with store.transaction() as s:
        return (s.scalar(select(func.count()).select_from(Email)) or 0,
                s.scalar(select(func.count(func.distinct(Email.message_id)))) or 0,
                s.scalar(select(func.count()).select_from(EmailSighting).where(EmailSighting.marked.is_(True))) or 0)


def _holding_both(store: Store) -> str | None:
    """A daemon that holds a mailbox lease and a sync lease at this moment."""
    now = datetime.now(timezone.utc)
    with store.transaction() as s:
        mail = set(s.scalars(select(MailboxState.lease_holder).where(MailboxState.lease_until > now)))
        sync = set(s.scalars(select(SyncLease.holder).where(SyncLease.lease_until > now)))
    both = sorted(h for h in mail & sync if h)
    return both[0] if both else None


@pytest.mark.slow
def test_three_daemons_share_the_work_and_a_killed_ones_leases_move(
        tmp_path: Path, private_postgres: PrivatePostgres, dovecot_server, radicale_server: Radicale) -> None:
    pg_url = private_postgres.create_database()
    passwords = tmp_path / "dav-passwords"
    passwords.mkdir()
    boxes = [DovecotHarness(dovecot_server, "imap", "tls") for _ in range(MAILBOXES)]
    tables = "".join(_mailbox_toml(f"box{i}", h, owner="jane.doe", batch_size=1) for i, h in enumerate(boxes))
    configs = [_config(tmp_path, i, pg_url, tables, radicale_server, passwords) for i in (1, 2, 3)]
    subprocess.run([ABOOK, "init", "-c", str(configs[0])], check=True, capture_output=True, env=_env())
    store = Store(make_engine(pg_url))
    seed_org(store)
    users = _seed_sync_users(store, radicale_server, passwords)
    for i, h in enumerate(boxes):
        for n in range(MESSAGES):
            h.deliver(message(i * 100 + n))
    total = MAILBOXES * MESSAGES

    daemons = {f"d{i}": subprocess.Popen([ABOOK, "serve", "-c", str(cfg)], env=_env(),
                                          stdout=open(tmp_path / f"d{i}.log", "w"), stderr=subprocess.STDOUT)
               for i, cfg in zip((1, 2, 3), configs)}
    try:
        # mid-poll and mid-sync: a daemon holds a mailbox's lease and a user's at once, and dies there. It is
        # stopped (SIGSTOP) first, so what it holds cannot change between looking and killing; if it let go
        # in between, it is continued and the search goes on.
        def held(victim: str) -> tuple[set[str], set[str]]:
            now = datetime.now(timezone.utc)
            with store.transaction() as s:
                return (set(s.scalars(select(MailboxState.name).where(MailboxState.lease_holder == victim,
                                                                      MailboxState.lease_until > now))),
                        set(s.scalars(select(SyncLease.systemuser_id).where(SyncLease.holder == victim,
                                                                            SyncLease.lease_until > now))))

        caught: list[tuple[str, set[str], set[str]]] = []

        def catch() -> bool:
            victim = _holding_both(store)
            if victim is None:
                return False
            daemons[victim].send_signal(signal.SIGSTOP)
            boxes_held, users_held = held(victim)
            if boxes_held and users_held:
                caught.append((victim, boxes_held, users_held))
                return True
            daemons[victim].send_signal(signal.SIGCONT)
            return False

        wait_until(catch, timeout=40, what="a daemon polling and syncing at once")
        victim, held_boxes, held_users = caught[0]
        daemons[victim].send_signal(signal.SIGKILL)
        assert daemons[victim].wait(timeout=10) == -signal.SIGKILL
        assert held_boxes and held_users

        wait_until(lambda: _tracked(store) == (total, total, total), timeout=40,
                   what=f"{total} messages tracked and marked once")
        password = {u: (passwords / u).read_text() for u in users}
        try:
            wait_until(lambda: all(len(_dav_crm_ids(radicale_server, u, password[u])) >= CONTACTS for u in users),
                       timeout=40, what="every user's address book to hold every contact")
        except TimeoutError:
            with store.transaction() as s:
                rows = s.execute(select(SyncLease.__table__)).all()
                links = s.execute(select(SyncLink.systemuser_id, func.count()).group_by(SyncLink.systemuser_id)).all()
            raise AssertionError((rows, links, [len(_dav_crm_ids(radicale_server, u, password[u])) for u in users]))
        survivors = [d for d in daemons if d != victim]
        for name in survivors:
            assert daemons[name].poll() is None, (tmp_path / f"{name}.log").read_text()
    finally:
        for proc in daemons.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in daemons.values():
            proc.wait(timeout=30)

    assert _tracked(store) == (total, total, total)
    with store.transaction() as s:
        # nothing came back from the mailboxes as a second CRM record
        assert s.scalar(select(func.count()).select_from(Contact)) == USERS * CONTACTS + 1  # + seed_org's Carl
        contacts = {}
        for user in users:
            uid = s.scalars(select(SystemUser.id).where(SystemUser.domainname == user)).one()
            contacts[user] = sorted(s.scalars(select(Contact.id).where(Contact.owner_id == uid)))
            links = list(s.scalars(select(SyncLink.crm_id).where(SyncLink.systemuser_id == uid)))
            assert sorted(links) == contacts[user], user  # one link per contact, none twice
        # the dead daemon's mailboxes and users were taken over: polled to the end and synced by another
        for name in held_boxes:
            row = s.get(MailboxState, name)
            assert row.messages_tracked == MESSAGES and row.cursor.endswith(f":{MESSAGES}")
        # never two syncs of one user at once: they would race to link the same records, and the loser's
        # items would be recorded as failed (abook sync status) and retried
        assert s.scalars(select(SyncIssue)).all() == []
        assert [(r.last_error, r.consecutive_failures) for r in s.scalars(select(SyncState))] == \
            [(None, 0)] * USERS
        by_id = {s.scalars(select(SystemUser.domainname).where(SystemUser.id == u)).one() for u in held_users}
    for user in users:
        ids = _dav_crm_ids(radicale_server, user, password[user])
        assert sorted(ids) == contacts[user], user  # every contact once on the DAV server
    assert by_id <= set(users)
    for name in daemons:
        log = (tmp_path / f"{name}.log").read_text()
        assert "failed" not in log and "Traceback" not in log, log[-3000:]
    store.dispose()
