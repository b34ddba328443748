"""``[metrics] listen`` in the real daemon: /metrics scraped over HTTP and parsed with prometheus_client's
parser while an LDAP worker serves beside the daemon, /healthz turning 503 when the store goes away, and
``abook status`` listing the daemon from its heartbeat.

The daemon runs on a PostgreSQL of the test's own (stopped under it at the end), polls a real Dovecot
IMAP mailbox and serves LDAP from two processes (``ldap.workers = 2``)."""

from __future__ import annotations

import signal
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

import ldap3
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from abook.passwords import hash_password
from abook.store import Store, make_engine
from abook.store.models import SystemUser
from tests.contract.harness import DovecotHarness
from tests.helpers import free_port, wait_for_port, wait_until
from tests.integration.test_router_imap import ABOOK, _env, _mailbox_toml
from tests.unit.routing.conftest import message, seed_org

PASSWORD = "jane-secret-1"


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=20) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client: (name, sorted labels) -> value."""
    status, body = _get(port, "/metrics")
    assert status == 200, body
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(body) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels`` (0 when there is none)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


def _connect(port: int, user: str | None, password: str | None) -> ldap3.Connection:
    server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=user, password=password, raise_exceptions=False)


@pytest.mark.slow
def test_metrics_healthz_and_status_of_a_daemon_with_an_ldap_worker(tmp_path: Path, private_postgres, dovecot_server) -> None:
    pg = private_postgres
    url = pg.create_database()
    mailbox = DovecotHarness(dovecot_server, "imap", "tls")
    ldap_port, metrics_port = free_port(), free_port()
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\nurl = "{url}"\ndata_dir = "{tmp_path / "var"}"\n'
                   f'[ldap]\nlisten = ["tcp:{ldap_port}:interface=127.0.0.1"]\nworkers = 2\n'
                   f'[metrics]\nlisten = "tcp:{metrics_port}:interface=127.0.0.1"\nstore_timeout = 3.0\n'
                   + "[router]\nloop_max_messages = 2\n" + _mailbox_toml("jane", mailbox, owner="jane.doe"))
    subprocess.run([ABOOK, "init", "-c", str(cfg)], check=True, capture_output=True, env=_env())
    store = Store(make_engine(url))
    seed_org(store)
    with store.transaction() as s:
        s.execute(update(SystemUser).where(SystemUser.domainname == "jane.doe")
                  .values(password_hash=hash_password(PASSWORD)))
    store.dispose()
    mailbox.deliver(message(1))
    mailbox.deliver(message(2))
    mailbox.deliver(message(3))  # a third from one sender: held by loop damping, untracked
    log = tmp_path / "daemon.log"
    daemon = subprocess.Popen([ABOOK, "serve", "-c", str(cfg)], env=_env(), stdout=open(log, "w"),
                              stderr=subprocess.STDOUT)
    try:
        wait_for_port(metrics_port, proc=daemon)
        wait_until(lambda: "LDAP worker 1 serving" in log.read_text(), timeout=60, what="the LDAP worker")
        wait_until(lambda: value(scrape(metrics_port), "abook_mailbox_polls_total", result="ok") >= 1
                   and value(scrape(metrics_port), "abook_mail_polled_total") == 3,
                   timeout=60, what="the mailbox polled")
        m = scrape(metrics_port)
        assert value(m, "abook_mail_tracked_total") == 2
        assert value(m, "abook_mail_untracked_total") == 1
        assert value(m, "abook_mail_untracked_total", reason="loop") == 1
        assert value(m, "abook_mailbox_errors_total") == 0
        assert value(m, "abook_pool_wait_seconds_count", pool="db") > 0

        # four connections open at once: the balancer gives each process its share
        conns = []
        for _ in range(4):
            c = _connect(ldap_port, "jane.doe", PASSWORD)
            assert c.bind()
            conns.append(c)
        for c in conns:
            for _ in range(2):
                c.search("o=crm", "(mail=*)", attributes=["cn"])  # jane has no role: nothing, but success
                assert c.result["result"] == 0, c.result
        refused = _connect(ldap_port, "jane.doe", "wrong")
        assert not refused.bind()
        anonymous = _connect(ldap_port, None, None)
        assert anonymous.bind()
        m = scrape(metrics_port)
        assert value(m, "abook_ldap_connections") == 6  # the four, the refused one, the anonymous one
        per_process = {ls: v for (n, ls), v in m.items() if n == "abook_ldap_process_connections"}
        assert len(per_process) == 2 and all(v >= 2 for v in per_process.values()), per_process
        assert value(m, "abook_ldap_requests_total", operation="bind", code="0") == 5
        assert value(m, "abook_ldap_requests_total", operation="bind", code="49") == 1
        assert value(m, "abook_ldap_requests_total", operation="search", code="0") == 8
        assert value(m, "abook_ldap_binds_total", outcome="success") == 4
        assert value(m, "abook_ldap_binds_total", outcome="anonymous") == 1
        assert value(m, "abook_ldap_binds_total", outcome="invalid_credentials") == 1
        assert value(m, "abook_ldap_search_seconds_count") == 8
        assert value(m, "abook_ldap_search_seconds_bucket", le="+Inf") == 8
        assert value(m, "abook_ldap_search_seconds_sum") > 0
        for c in [*conns, refused, anonymous]:
            c.unbind()
        wait_until(lambda: value(scrape(metrics_port), "abook_ldap_connections") == 0, timeout=20,
                   what="the connections to close")

        assert _get(metrics_port, "/healthz") == (200, "ok\n")
        status = subprocess.run([ABOOK, "status", "-c", str(cfg)], capture_output=True, text=True, env=_env())
        assert status.returncode == 0, status.stderr
        lines = status.stdout.splitlines()
        header = next(i for i, line in enumerate(lines) if line.startswith("DAEMON"))
        assert lines[header].split() == ["DAEMON", "HOST", "PID", "STARTED", "LAST", "HEARTBEAT", "STATE", "LEASES"]
        row = lines[header + 1].split()
        assert row[2] == str(daemon.pid) and row[7] == "running", status.stdout

        private_postgres.stop()  # the store goes away under the daemon
        code, body = _get(metrics_port, "/healthz")
        assert code == 503 and body.startswith("store unreachable"), body
        assert pg.url().split("@")[0] not in body  # no connection string (and so no password) in the answer
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=60)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    assert PASSWORD not in log.read_text()


@pytest.mark.slow
def test_healthz_says_the_router_is_stuck_while_its_poll_hangs(tmp_path: Path) -> None:
    """A mailbox server that stops in the middle of a message: the poll hangs (until timeout), no poll
    completes, and /healthz says so until the poll is cut and the next one completes."""
    from tests.fakes.fault_server import message as fake_message
    from tests.fakes.imap_server import FakeImapServer
    from tests.integration.test_mailbox_faults import fake_mailbox, tracked
    from tests.integration.test_router_imap import _init, _serve, _stop

    imap = FakeImapServer().start()
    try:
        imap.deliver(fake_message(1))
        imap.hang_body = True
        port = free_port()
        cfg, store = _init(tmp_path, f'[metrics]\nlisten = "tcp:{port}:interface=127.0.0.1"\n'
                                     "stuck_after_intervals = 2\n"
                                     + fake_mailbox("jane", imap.port, timeout=10.0, command_timeout=12.0))
        seed_org(store)
        daemon = _serve(cfg, tmp_path / "run.log")
        try:
            wait_for_port(port, proc=daemon)
            imap.wait_for(lambda: imap.count("hanging") == 1, what="the download to hang")
            wait_until(lambda: _get(port, "/healthz")[0] == 503, timeout=10, what="healthz to turn 503")
            code, body = _get(port, "/healthz")
            assert code == 503 and body.startswith("router stuck: no mailbox poll completed for "), body
            imap.clear_faults()
            wait_until(lambda: tracked(store, "jane")[2] == 1, timeout=60, what="the message tracked once the "
                                                                               "hung poll was cut")
            wait_until(lambda: _get(port, "/healthz") == (200, "ok\n"), timeout=10, what="healthz to recover")
            m = scrape(port)
            assert value(m, "abook_mailbox_errors_total", kind="transient") == 1
            assert value(m, "abook_mail_tracked_total") == 1
        finally:
            _stop(daemon)
    finally:
        imap.stop()
