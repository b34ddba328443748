"""EWS-only behaviour, replayed through exchangelib against the SOAP responder (tests/ews/responder.py)."""

from __future__ import annotations

import threading

import pytest
import pytest_twisted
from twisted.internet import reactor

from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxMissing, MessageGone, RateLimited, Unavailable
from abook.mailbox.ews import EwsSource
from abook.threads import ThreadPoolRunner, ThreadPoolService
from tests.contract.harness import make_message
from tests.ews.harness import CATEGORY, PROPERTY, EwsHarness
from tests.ews.responder import EwsResponder


@pytest.fixture
def ews(ews_responder: EwsResponder) -> EwsHarness:
    return EwsHarness(ews_responder)


def _since(responder: EwsResponder, mark: int) -> list[str]:
    return [r.operation for r in responder.requests[mark:]]


def test_no_hidden_calls_only_the_operations_needed(ews: EwsHarness) -> None:
    """Autodiscover off, a fixed server build, the Inbox by its distinguished id: no probe, no GetFolder."""
    ews.deliver(make_message("one"))
    mark = len(ews.responder.requests)
    source = EwsSource(ews.config())
    (ref,) = source.changes_blocking(None, 10).messages
    source.fetch_blocking(ref)
    source.mark_tracked_blocking(ref)
    source.close_blocking()
    assert _since(ews.responder, mark) == ["SyncFolderItems", "GetItem", "GetItem", "UpdateItem"]


def test_impersonation_names_the_mailbox_and_delegate_does_not(ews: EwsHarness) -> None:
    mark = len(ews.responder.requests)
    for access in ("impersonation", "delegate"):
        source = EwsSource(ews.config(ews={"access_type": access}))
        source.changes_blocking(None, 10)
        source.close_blocking()
    assert [r.impersonated for r in ews.responder.requests[mark:]] == [ews.address, None]


def test_short_server_busy_back_off_is_waited_out_and_retried(ews: EwsHarness) -> None:
    sent = make_message("busy")
    ews.deliver(sent)
    ews.responder.busy(back_off_ms=300)
    mark = len(ews.responder.requests)
    source = EwsSource(ews.config())
    batch = source.changes_blocking(None, 10)
    source.close_blocking()
    first, second = ews.responder.requests[mark:]
    assert (first.operation, second.operation) == ("SyncFolderItems", "SyncFolderItems")
    assert second.at - first.at >= 0.3
    assert [m.external_id for m in batch.messages] == [i.id for i in ews.responder.mailboxes[ews.address]]


def test_long_server_busy_back_off_is_rate_limited_for_the_router(ews: EwsHarness) -> None:
    ews.responder.busy(back_off_ms=30_000)
    mark = len(ews.responder.requests)
    source = EwsSource(ews.config())  # max_retry_wait = 2 s in the harness
    with pytest.raises(RateLimited) as e:
        source.changes_blocking(None, 10)
    source.close_blocking()
    assert e.value.retry_after == 30.0
    assert _since(ews.responder, mark) == ["SyncFolderItems"]  # no retry: the router waits, not a thread


def test_mark_keeps_other_categories_and_sets_the_property(ews: EwsHarness) -> None:
    ews.deliver(make_message("categorised"))
    source = EwsSource(ews.config())
    (ref,) = source.changes_blocking(None, 10).messages
    ews.responder.items[ref.external_id].categories = ["Red category"]
    source.mark_tracked_blocking(ref)
    mark = len(ews.responder.requests)
    source.mark_tracked_blocking(ref)  # already marked: read, nothing written
    source.close_blocking()
    item = ews.responder.items[ref.external_id]
    assert item.categories == ["Red category", CATEGORY]
    assert item.extended == {PROPERTY: "1"}
    assert _since(ews.responder, mark) == ["GetItem"]


def test_configured_property_and_category_names(ews: EwsHarness) -> None:
    ews.deliver(make_message("custom"))
    source = EwsSource(ews.config(ews={"tracked_property": "abookLink", "tracked_category": "In CRM"}))
    (ref,) = source.changes_blocking(None, 10).messages
    source.mark_tracked_blocking(ref)
    source.close_blocking()
    item = ews.responder.items[ref.external_id]
    assert item.categories == ["In CRM"]
    assert item.extended == {("PublicStrings", "abookLink", "Integer"): "1"}


def test_updates_and_deletions_are_not_new_mail(ews: EwsHarness) -> None:
    ews.deliver(make_message("a"))
    ews.deliver(make_message("b"))
    source = EwsSource(ews.config())
    batch = source.changes_blocking(None, 10)
    a, b = batch.messages
    source.mark_tracked_blocking(a)
    source.remove_blocking(b)
    c = make_message("c")
    ews.deliver(c)
    later = source.changes_blocking(batch.cursor, 10)
    assert [source.fetch_blocking(r) for r in later.messages] == [c]
    with pytest.raises(MessageGone):
        source.fetch_blocking(b)
    source.close_blocking()


def test_unknown_mailbox_is_mailbox_missing(ews: EwsHarness) -> None:
    source = EwsSource(ews.config(ews={"primary_smtp_address": "nobody@example.com"}))
    with pytest.raises(MailboxMissing, match="nobody@example.com"):
        source.changes_blocking(None, 10)
    source.close_blocking()


def test_rejected_sync_state_is_cursor_invalid(ews: EwsHarness) -> None:
    source = EwsSource(ews.config())
    with pytest.raises(CursorInvalid):
        source.changes_blocking("bm90IGEgc3RhdGU=", 10)
    source.close_blocking()


def test_wrong_password_is_not_retried(ews: EwsHarness) -> None:
    mark = len(ews.responder.requests)
    source = EwsSource(ews.config(password="wrong"))
    with pytest.raises(AuthFailed):
        source.changes_blocking(None, 10)
    source.close_blocking()
    assert _since(ews.responder, mark) == []  # refused at HTTP level (401), once, never reaching a handler


@pytest_twisted.ensureDeferred
async def test_runs_on_the_bounded_mail_pool_not_the_reactor(ews: EwsHarness) -> None:
    """The router's shape: blocking exchangelib calls go through a named, bounded ThreadPool."""
    pool = ThreadPoolService("mail", 1, 2)
    pool.startService()
    try:
        runner = ThreadPoolRunner(reactor, pool.pool)
        sent = make_message("via pool")
        ews.deliver(sent)
        source = EwsSource(ews.config())

        def changes_and_thread():  # type: ignore[no-untyped-def]
            return source.changes_blocking(None, 10), threading.current_thread().name

        batch, thread = await runner.run(changes_and_thread)
        raw = await runner.run(source.fetch_blocking, batch.messages[0])
        await runner.run(source.close_blocking)
        assert raw == sent
        assert thread != threading.main_thread().name and thread == "PoolThread-mail-0"
    finally:
        pool.stopService()


def test_https_with_the_configured_ca_file(ews_responder_tls: tuple[EwsResponder, str]) -> None:
    responder, ca_file = ews_responder_tls
    harness = EwsHarness(responder)
    sent = make_message("over TLS")
    harness.deliver(sent)
    source = EwsSource(harness.config(ca_file=ca_file))
    (ref,) = source.changes_blocking(None, 10).messages
    assert source.fetch_blocking(ref) == sent
    source.close_blocking()


def test_https_refuses_an_untrusted_certificate(ews_responder_tls: tuple[EwsResponder, str]) -> None:
    responder, _ = ews_responder_tls
    harness = EwsHarness(responder)
    url = responder.url.replace("127.0.0.1", "localhost")  # another server key: no ca_file for it
    source = EwsSource(harness.config(ews={"service_endpoint": url}))
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED|certificate"):
        source.changes_blocking(None, 10)
    source.close_blocking()
