"""POP3 under faults, in a real ``abook serve`` against fake POP3 servers (tests/fakes/pop3_server.py, real
sockets): hang, trickle, garbage, over-size (announced or not), a drop between RETR and DELE followed by
reassigned UIDLs, and a server that reuses UIDLs. The guarantees are IMAP's: each message tracked once,
deleted (delete_after_tracking) only once tracked, never another, and no server holds a mail thread or
the daemon's stop."""

from __future__ import annotations

import signal
import time
from typing import Iterator

import pytest

from tests.fakes.fault_server import big_body, message
from tests.fakes.pop3_server import FakePop3Server
from tests.helpers import wait_until
from tests.integration.test_mailbox_faults import fake_mailbox, tracked
from tests.integration.test_mailbox_limits import LIMIT, poll_with_limit, untracked
from tests.integration.test_router_imap import _init, _serve, _stop
from tests.unit.routing.conftest import seed_org
from tests.unit.routing.test_poller import _state

pytestmark = pytest.mark.slow


@pytest.fixture
def pop3_servers() -> Iterator[list[FakePop3Server]]:
    started: list[FakePop3Server] = []
    yield started
    for server in started:
        server.stop()


def serve_pop3(started: list[FakePop3Server]) -> FakePop3Server:
    server = FakePop3Server().start()
    started.append(server)
    return server


def test_a_pop3_server_that_hangs_trickles_or_sends_garbage_never_holds_the_daemon(tmp_path, pop3_servers) -> None:
    hang, trickle, garbage, healthy = (serve_pop3(pop3_servers) for _ in range(4))
    for server in (hang, trickle, garbage):
        server.deliver(message(1, tag=f"broken{server.port}"))
    hang.hang_body = True
    trickle.trickle = (20, 0.5)
    garbage.garbage_greeting = True
    tables = "".join(fake_mailbox(name, server.port, kind="pop3", timeout=2.0, command_timeout=4.0,
                                  delete_after_tracking=True)
                     for name, server in (("hang", hang), ("trickle", trickle), ("garbage", garbage),
                                          ("healthy", healthy)))
    cfg, store = _init(tmp_path, tables + "[router]\nmail_threads = 2\n")
    seed_org(store)
    log = tmp_path / "run.log"
    daemon = _serve(cfg, log)
    try:
        for n in range(3):  # meanwhile, the healthy mailbox is read as usual, on the threads left
            healthy.deliver(message(n, tag="healthy"))
            wait_until(lambda: tracked(store, "healthy")[2] == n + 1, timeout=30, what=f"healthy message {n}")
        wait_until(lambda: all(_state(store, n).last_error for n in ("hang", "trickle", "garbage")), timeout=30,
                   what="each broken mailbox to fail")
        assert "timed out" in _state(store, "hang").last_error
        assert _state(store, "trickle").last_error.endswith("downloading a message took more than "
                                                            "command_timeout (4s)")
        assert _state(store, "garbage").last_error.startswith("Unavailable: garbage: pop3://127.0.0.1:")
        trickle.wait_for(lambda: trickle.count("TOP") >= 2, what="the trickling download tried again")
        stopped = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 12
    finally:
        if daemon.poll() is None:
            _stop(daemon)
    text = log.read_text()
    for name in ("hang", "trickle", "garbage"):
        assert f"backing off {name} for" in text
        assert tracked(store, name)[2] == 0
    assert [s.message_ids() for s in (hang, trickle, garbage)] == [["<broken%d-1@customer.test>" % s.port]
                                                                  for s in (hang, trickle, garbage)]
    assert healthy.message_ids() == [] and sorted(healthy.deleted) == [f"<healthy-{n}@customer.test>"
                                                                       for n in range(3)]
    assert "Traceback" not in text


def test_pop3_mail_over_the_limit_is_not_downloaded_and_a_liar_is_cut_off(tmp_path, pop3_servers) -> None:
    announced = serve_pop3(pop3_servers)
    announced.deliver(message(1, subject="LIST says 20 MB", body=big_body(20_000_000)))
    announced.deliver(message(2))
    _, store, peak = poll_with_limit(tmp_path / "announced", announced, kind="pop3", delete_after_tracking=True)
    reads = [e for e in announced.events if e.startswith(("TOP 1 ", "RETR 1 "))]
    assert len(reads) == 1 and reads[0].startswith("TOP 1 ") and int(reads[0].split("(")[1].split()[0]) < 1000, reads
    assert announced.body_sent < 100_000  # its header only, for the list
    [(reason, subject, detail)] = untracked(store)
    assert (reason, subject) == ("too_large", "LIST says 20 MB")
    assert "(the size the server announced: not downloaded)" in detail
    assert announced.message_ids() == ["<fake-1@customer.test>"]  # left on the server, not deleted
    assert peak < 150, f"{peak} MiB"

    liar = serve_pop3(pop3_servers)
    uidl = liar.deliver(message(1, subject="LIST says 2 kB", body=big_body(40_000_000)))
    liar.announce[uidl] = 2000
    liar.deliver(message(2))
    _, store, peak = poll_with_limit(tmp_path / "liar", liar, kind="pop3", delete_after_tracking=True)
    assert liar.body_sent < 20_000_000, liar.body_sent
    [(reason, subject, detail)] = untracked(store)
    assert (reason, subject) == ("too_large", "LIST says 2 kB")
    assert f"more than {LIMIT} (found while downloading: cut off at the limit)" in detail
    assert liar.message_ids() == ["<fake-1@customer.test>"]
    assert peak < 150, f"{peak} MiB"


def test_a_drop_between_retr_and_dele_then_reassigned_uidls(tmp_path, pop3_servers) -> None:
    """The message is tracked (committed), the connection drops at DELE, and the server's UIDLs all change
    before the next session (a migration). The old UIDL names nothing now: the message used to be taken as
    gone, its sighting marked, and it stayed on the server forever, read again as a duplicate."""
    pop3 = serve_pop3(pop3_servers)
    for n in range(3):
        pop3.deliver(message(n))
    pop3.fail("DELE", then=pop3.renumber)
    cfg, store = _init(tmp_path, fake_mailbox("jane", pop3.port, kind="pop3", delete_after_tracking=True))
    seed_org(store)
    daemon = _serve(cfg, tmp_path / "run.log")
    try:
        wait_until(lambda: pop3.message_ids() == [], timeout=30, what="every message deleted once tracked")
        wait_until(lambda: tracked(store, "jane") == (3, 3, 3), timeout=30, what="3 tracked once, all marked")
        pop3.deliver(message(3))
        wait_until(lambda: tracked(store, "jane") == (4, 4, 4) and pop3.message_ids() == [], timeout=30,
                   what="new mail read and deleted")
    finally:
        _stop(daemon)
    assert sorted(pop3.deleted) == [f"<fake-{n}@customer.test>" for n in range(4)]
    assert "found again by its Message-ID" in (tmp_path / "run.log").read_text()


def test_a_server_reusing_uidls_never_makes_abook_delete_unread_mail(tmp_path, pop3_servers) -> None:
    """UIDLs are message numbers here (against RFC 1939). A is tracked, its DELE drops; another client
    removes A and new mail B arrives, now under A's UIDL. Deleting by that UIDL would destroy B unread."""
    pop3 = serve_pop3(pop3_servers)
    pop3.reuse_uidls = True
    pop3.deliver(message(1, subject="A"))

    def a_removed_b_arrives() -> None:
        pop3.expunge("<fake-1@customer.test>")
        pop3.deliver(message(2, subject="B"))

    pop3.fail("DELE", then=a_removed_b_arrives)
    cfg, store = _init(tmp_path, fake_mailbox("jane", pop3.port, kind="pop3", delete_after_tracking=True))
    seed_org(store)
    log = tmp_path / "run.log"
    daemon = _serve(cfg, log)
    try:
        wait_until(lambda: tracked(store, "jane") == (1, 1, 1), timeout=30, what="A tracked and done with")
        wait_until(lambda: pop3.count("connect") >= 6, timeout=30, what="a few more polls")
    finally:
        _stop(daemon)
    assert pop3.message_ids() == ["<fake-2@customer.test>"] and pop3.deleted == []
