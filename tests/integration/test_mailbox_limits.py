"""Bounded fetches in a real ``abook serve`` against the fake IMAP server (real sockets): a message over
``max_message_bytes`` is never downloaded, a server that sends more than it announced is cut off at the
limit, a trickling server is cut at ``command_timeout`` and cannot delay a stop, and a large message
costs a small multiple of its size (the review's 4a', 4b and 4b')."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from abook.store import Store
from abook.store.models import UntrackedMessage
from tests.fakes.fault_server import big_body, large_message, message
from tests.helpers import memory, wait_until
from tests.integration.test_mailbox_faults import fake_mailbox, imap, polled, tracked  # noqa: F401 (fixture)
from tests.integration.test_router_imap import ABOOK, _env, _init, _serve, _stop
from tests.unit.routing.conftest import seed_org

pytestmark = pytest.mark.slow
LIMIT = 1_000_000


def untracked(store) -> list[tuple[str, str, str]]:
    with store.transaction() as s:
        return [tuple(r) for r in s.execute(select(UntrackedMessage.reason, UntrackedMessage.subject,
                                                   UntrackedMessage.detail))]


def poll_with_limit(tmp_path, server, kind: str = "imap", **extra) -> tuple[Path, Store, float]:
    """A daemon with ``max_message_bytes = LIMIT`` polls ``server`` (a large message, then a small one) until
    the small one is tracked and the large one listed; (config, store, the daemon's peak in MiB)."""
    tmp_path.mkdir(exist_ok=True)
    cfg, store = _init(tmp_path, fake_mailbox("jane", server.port, kind=kind, **extra)
                       + f"[tracking]\nmax_message_bytes = {LIMIT}\n")
    seed_org(store)
    daemon = _serve(cfg, tmp_path / "run.log")
    try:
        wait_until(lambda: tracked(store, "jane") == (1, 1, 1), timeout=30, what="the small message tracked")
        wait_until(lambda: untracked(store) != [], timeout=30, what="the large one listed")
        return cfg, store, memory(daemon.pid)["VmHWM"]
    finally:
        _stop(daemon)


def test_a_message_announced_over_the_limit_is_never_downloaded(tmp_path, imap) -> None:
    large = message(1, subject="the 20 MB one", body=big_body(20_000_000))
    imap.deliver(large)
    imap.deliver(message(2))
    cfg, store, peak = poll_with_limit(tmp_path, imap)
    assert imap.count("FETCH body uid 1") == 0  # only its first 64 KiB, for the list
    assert imap.body_sent < 100_000
    [(reason, subject, detail)] = untracked(store)
    assert (reason, subject) == ("too_large", "the 20 MB one")
    assert detail == f"{len(large)} bytes, more than {LIMIT} (the size the server announced: not downloaded)"
    assert imap.flags()["<fake-1@customer.test>"] == set()  # left as it was, for the admin
    listed = subprocess.run([ABOOK, "untracked", "-c", str(cfg), "--reason", "too_large"], capture_output=True,
                            text=True, env=_env(), check=True).stdout
    assert "the 20 MB one" in listed
    assert peak < 150, f"{peak} MiB"  # the daemon alone is ~90 MiB; a download would have added 120 and more


def test_a_server_sending_more_than_it_announced_is_cut_off_at_the_limit(tmp_path, imap) -> None:
    uid = imap.deliver(message(1, subject="it said 2 kB", body=big_body(40_000_000)))
    imap.announce[uid] = 2000
    imap.deliver(message(2))
    _, store, peak = poll_with_limit(tmp_path, imap)
    assert imap.body_sent < 20_000_000, imap.body_sent  # the rest never left the server (socket buffers aside)
    [(reason, subject, detail)] = untracked(store)
    assert (reason, subject) == ("too_large", "it said 2 kB")
    assert "found while downloading: cut off at the limit" in detail
    assert peak < 150, f"{peak} MiB"


def test_a_trickling_server_is_cut_at_the_deadline_and_never_delays_a_stop(tmp_path, imap) -> None:
    imap.deliver(message(1, body=b"x" * 3000 + b"\r\n"))
    imap.trickle = (20, 0.5)  # 20 bytes every half second: each read well within timeout, never done
    cfg, store = _init(tmp_path, fake_mailbox("slow", imap.port, timeout=5.0, command_timeout=3.0))
    seed_org(store)
    log = tmp_path / "run.log"
    daemon = _serve(cfg, log)
    try:
        wait_until(lambda: "downloading a message took more than command_timeout (3s)" in log.read_text(),
                   timeout=30, what="the deadline")
        assert "cutting the connection of slow" in log.read_text()
        fetches = imap.count("FETCH body")
        imap.wait_for(lambda: imap.count("FETCH body") > fetches, what="the next attempt, trickling again")
        stopped = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=30) == 0
        assert time.monotonic() - stopped < 12  # 5 s of grace for the download in hand, then it is cut
    finally:
        if daemon.poll() is None:
            _stop(daemon)
    assert tracked(store, "slow") == (0, 0, 0)
    text = log.read_text()
    assert "was cut short: the daemon is stopping" in text and "abook stopped" in text
    assert "Traceback" not in text


def test_a_large_message_costs_a_small_multiple_of_its_size(tmp_path, imap) -> None:
    """A 20 MB message with two attachments: the daemon's peak resident memory grew ~7x its size before
    (the parser's copies, base64 decoded through three more, every attachment bound and copied again by
    SQLite); bench/mail_memory.py measures it for the README."""
    cfg, store = _init(tmp_path, fake_mailbox("big", imap.port))
    seed_org(store)
    daemon = _serve(cfg, tmp_path / "run.log")
    try:
        wait_until(lambda: polled(store, "big"), timeout=30, what="a poll of the empty mailbox")
        before = memory(daemon.pid)["VmHWM"]
        raw = large_message(20_000_000, "attachments")
        imap.deliver(raw)
        wait_until(lambda: tracked(store, "big") == (1, 1, 1), timeout=120, what="the message tracked and marked")
        growth = (memory(daemon.pid)["VmHWM"] - before) * 1048576 / len(raw)
    finally:
        _stop(daemon)
    print(f"the daemon's peak grew {growth:.2f}x the message")
    assert growth < 4.5, f"the daemon's peak grew {growth:.2f}x the message"
