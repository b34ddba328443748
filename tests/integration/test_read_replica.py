"""LDAP reads over a real streaming replica (``store.read_urls``): a private PostgreSQL primary, a hot standby
made from it with ``pg_basebackup -R``, and a real ``abook serve`` whose searches and binds read the standby.

A record written on the primary is not found while the standby has not replayed it (what a search sees
during replica lag), and is found once the standby's replay has reached the primary's WAL position; a
standby that goes away falls back to the primary without failing a search or a bind."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any, Iterator

import psycopg
import pytest

from tests.fixtures.postgres import PrivatePostgres
from tests.helpers import free_port, wait_for_port, wait_until
from tests.integration.test_metrics import scrape, value
from tests.integration.test_store_outage import ABOOK, DEMO, _env

pytestmark = pytest.mark.slow

PROBE = """dn: uid=50000000-0000-4000-8000-0000000000aa,ou=Contacts,o=crm
objectClass: top
objectClass: person
objectClass: organizationalPerson
objectClass: inetOrgPerson
objectClass: crmRecord
crmEntity: contact
uid: 50000000-0000-4000-8000-0000000000aa
firstname: Rhea
lastname: Plica
fullname: Rhea Plica
emailaddress1: rhea.plica@northwind.example
parentcustomerid: 40000000-0000-4000-8000-000000000001
statecode: 0
ownerid: 30000000-0000-4000-8000-000000000003
"""


@pytest.fixture
def standby(private_postgres: PrivatePostgres) -> Iterator[PrivatePostgres]:
    server = private_postgres.standby()
    try:
        yield server
    finally:
        server.close()


def _sql(port: int, db: str, query: str) -> Any:
    with psycopg.connect(f"host=127.0.0.1 port={port} user=abook dbname={db}", autocommit=True) as c:
        return c.execute(query).fetchone()[0]


def _abook(cfg: Path, *args: str) -> None:
    r = subprocess.run([ABOOK, args[0], "-c", str(cfg), *args[1:]], capture_output=True, text=True, env=_env(),
                       timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr


def _search(port: int, mail: str) -> tuple[int, list[str]]:
    """A search by alice (every active record with an email), over a new connection: (result, cn values)."""
    import ldap3

    conn = ldap3.Connection(ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE, connect_timeout=5),
                            user="alice", password="alice-demo", raise_exceptions=False, receive_timeout=15)
    try:
        conn.bind()
        if conn.result["result"] != 0:
            return conn.result["result"], []
        conn.search("o=crm", f"(mail={mail})", attributes=["cn"])
        return conn.result["result"], sorted(str(e.cn) for e in conn.entries)
    finally:
        conn.unbind()


def test_searches_read_the_standby_once_replayed_and_the_primary_when_it_is_gone(
        tmp_path: Path, private_postgres: PrivatePostgres, standby: PrivatePostgres) -> None:
    primary = private_postgres
    url = primary.create_database()
    db = url.rsplit("/", 1)[1]
    replica_url = url.replace(f":{primary.port}/", f":{standby.port}/")
    ldap_port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\nread_urls = ["{replica_url}"]\n'
                   f'[ldap]\nlisten = ["tcp:{ldap_port}:interface=127.0.0.1"]\n[logging]\nlevel = "info"\n'
                   f'[metrics]\nlisten = "tcp:{metrics_port}:interface=127.0.0.1"\n')
    _abook(cfg, "init")
    _abook(cfg, "import", str(DEMO))
    log = tmp_path / "abook.log"
    daemon = subprocess.Popen([ABOOK, "serve", "-c", str(cfg)], env=_env(), stdout=open(log, "w"),
                              stderr=subprocess.STDOUT)
    try:
        wait_for_port(ldap_port, proc=daemon)
        wait_until(lambda: _search(ldap_port, "nancy*") == (0, ["Nancy Davolio"]), timeout=30,
                   what="the demo book to be searchable through the standby")
        # the daemon reads the standby: its connections are there
        assert _sql(standby.port, "postgres", f"SELECT count(*) FROM pg_stat_activity WHERE datname = '{db}'") > 0

        # lag: the standby stops replaying; a record written on the primary is not found yet
        _sql(standby.port, db, "SELECT pg_wal_replay_pause()")
        probe = tmp_path / "probe.ldif"
        probe.write_text(PROBE)
        _abook(cfg, "import", str(probe))
        written = _sql(primary.port, db, "SELECT pg_current_wal_lsn()::text")
        assert _search(ldap_port, "rhea*") == (0, [])
        # replayed: found through the standby
        _sql(standby.port, db, "SELECT pg_wal_replay_resume()")
        wait_until(lambda: _sql(standby.port, db, f"SELECT pg_last_wal_replay_lsn() >= '{written}'::pg_lsn"),
                   timeout=30, what="the standby to replay the primary's write")
        assert _search(ldap_port, "rhea*") == (0, ["Rhea Plica"])
        before = scrape(metrics_port)
        assert value(before, "abook_store_replica_reads_total", answered_by="replica") > 0
        assert value(before, "abook_store_replica_reads_total", answered_by="primary") == 0

        # the standby goes away: binds and searches go on, answered by the primary
        standby.stop()
        for _ in range(3):
            assert _search(ldap_port, "rhea*") == (0, ["Rhea Plica"])
            assert _search(ldap_port, "nancy*") == (0, ["Nancy Davolio"])
        assert daemon.poll() is None
        after = scrape(metrics_port)
        assert value(after, "abook_store_replica_reads_total", answered_by="primary") > 0
    finally:
        daemon.terminate()  # the daemon this test started, by its pid
        daemon.wait(30)
    text = log.read_text()
    assert "read replica" in text and "failed a read" in text and "reads go to the primary" in text
    assert "the store is unavailable" not in text  # the primary never was
