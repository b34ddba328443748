"""The poller on a Clock: each message tracked once, cursor saved with it, marked after the commit."""

from __future__ import annotations

from sqlalchemy import func, select

from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxMissing, MessageGone, RateLimited, Unavailable
from abook.store import Store
from abook.store.models import Activity, EmailSighting, MailboxState, UntrackedMessage
from tests.unit.routing.conftest import HeldRunner, message

JANE = {"name": "jane", "type": "imap", "owner": "jane.doe", "interval": 60.0}


def _state(store: Store, name: str) -> MailboxState:
    with store.transaction() as s:
        row = s.get(MailboxState, name)
        assert row is not None
        s.expunge(row)
        return row


def _activities(store: Store) -> int:
    with store.transaction() as s:
        return s.scalar(select(func.count()).select_from(Activity)) or 0


def test_new_mail_is_tracked_once_marked_and_cursor_saved(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    for n in range(3):
        src.deliver(message(n))
    router.service.startService()
    assert _activities(store) == 3
    assert src.tracked == {1, 2, 3}
    row = _state(store, "jane")
    assert (row.cursor, row.messages_tracked, row.last_error, row.enabled) == ("3", 3, None, True)
    assert row.lease_holder is None
    with store.transaction() as s:
        assert s.scalars(select(EmailSighting.marked)).all() == [True, True, True]
    # the next poll reads only what is new
    src.deliver(message(3))
    router.advance(60)
    assert _activities(store) == 4 and src.tracked == {1, 2, 3, 4}
    assert src.calls.count("fetch") == 4
    router.stop()


def test_batches_follow_more_until_the_mailbox_is_read(store, org, make_router) -> None:
    router = make_router([{**JANE, "batch_size": 2}], start=False)
    for n in range(5):
        router.sources["jane"].deliver(message(n))
    router.service.startService()
    assert _activities(store) == 5
    assert router.sources["jane"].calls.count("changes") == 3
    router.stop()


def test_transient_errors_back_off_and_recover(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.fail("changes", Unavailable("connection refused"), times=2)
    router.service.startService()
    row = _state(store, "jane")
    assert row.last_error == "Unavailable: connection refused" and row.enabled and row.consecutive_failures == 0
    router.advance(60)  # backing off 60 s after the first failure: this tick polls, fails again
    assert src.calls.count("changes") == 2
    router.advance(60)  # second back-off is 120 s: skipped
    assert src.calls.count("changes") == 2
    router.advance(60)
    assert src.calls.count("changes") == 3
    assert _activities(store) == 1
    assert _state(store, "jane").last_error is None
    router.stop()


def test_rate_limit_is_honoured(store, org, make_router) -> None:
    router = make_router([{**JANE, "interval": 10.0}], start=False)
    src = router.sources["jane"]
    src.fail("changes", RateLimited("server busy", retry_after=35))
    router.service.startService()
    router.advance(10)
    router.advance(10)
    router.advance(10)
    assert src.calls.count("changes") == 1
    router.advance(10)
    assert src.calls.count("changes") == 2
    router.stop()


def test_permanent_errors_disable_the_mailbox_others_go_on(store, org, make_router) -> None:
    from abook.store.mailboxes import enable_mailbox_txn

    other = {"name": "support", "type": "imap", "owner": "queue:support@example.com", "interval": 60.0}
    router = make_router([JANE, other], router={"disable_after_failures": 3}, start=False)
    router.sources["jane"].fail("changes", AuthFailed("authentication failed"), times=5)
    router.sources["support"].deliver(message(1, to="support@example.com"))
    router.service.startService()
    router.advance(60)
    assert _state(store, "jane").enabled
    router.advance(60)
    row = _state(store, "jane")
    assert (row.enabled, row.consecutive_failures, row.last_error) == (False, 3, "AuthFailed: authentication failed")
    router.advance(60)
    assert router.sources["jane"].calls.count("changes") == 3  # disabled: not polled any more
    assert _state(store, "support").messages_tracked == 1
    # the admin fixes the password and re-enables it; the running daemon picks it up
    router.sources["jane"].failures.clear()
    router.sources["jane"].deliver(message(2))
    with store.transaction() as s:
        assert enable_mailbox_txn(s, "jane")
    router.advance(60)
    row = _state(store, "jane")
    assert (row.enabled, row.consecutive_failures, row.messages_tracked) == (True, 0, 1)
    router.stop()


def test_missing_mailbox_and_unknown_owner_are_permanent(store, org, make_router) -> None:
    ghost = {"name": "ghost", "type": "imap", "owner": "nobody", "interval": 60.0}
    router = make_router([JANE, ghost], router={"disable_after_failures": 1}, start=False)
    router.sources["jane"].fail("changes", MailboxMissing("no folder INBOX"))
    router.service.startService()
    assert not _state(store, "jane").enabled
    row = _state(store, "ghost")
    assert not row.enabled and row.last_error == "OwnerUnknown: owner 'nobody' is no user or queue in the store"
    router.stop()


def test_a_disabled_mailbox_is_not_polled_whatever_disabled_it(store, org, make_router) -> None:
    """Review problem 5: a mailbox disabled because its owner is unknown was still tried (and failed, with a
    warning) at every interval, and again after a restart: the owner was looked up before the lease."""
    ghost = {"name": "ghost", "type": "imap", "owner": "nobody", "interval": 60.0}
    router = make_router([ghost], router={"disable_after_failures": 2}, start=False)
    router.service.startService()
    router.advance(60)
    row = _state(store, "ghost")
    assert (row.enabled, row.consecutive_failures) == (False, 2)
    router.advance(60 * 5)
    after = _state(store, "ghost")
    assert (after.consecutive_failures, after.last_poll_at) == (2, row.last_poll_at)
    router.stop()
    again = make_router([ghost])  # a restarted daemon
    again.advance(60 * 3)
    assert _state(store, "ghost").consecutive_failures == 2
    assert again.sources["ghost"].calls == []
    again.stop()


def test_invalid_cursor_rereads_without_duplicates(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    router.service.startService()
    src.deliver(message(2))
    src.fail("changes", CursorInvalid("UIDVALIDITY changed"))
    router.advance(60)
    assert _state(store, "jane").cursor is None
    router.advance(60)
    assert _activities(store) == 2
    assert _state(store, "jane").cursor == "2"
    router.stop()


def test_crash_between_commit_and_mark_is_repaired_at_start(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.fail("mark", Unavailable("connection reset"))
    router.service.startService()
    assert _activities(store) == 1 and src.tracked == set()
    assert _state(store, "jane").cursor == "1"
    router.stop()
    again = make_router([JANE], sources=router.sources)
    assert src.tracked == {1}
    assert _activities(store) == 1
    with store.transaction() as s:
        assert s.scalars(select(EmailSighting.marked)).all() == [True]
    again.stop()


def test_a_message_whose_tracking_raises_is_left_untracked_others_tracked(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.deliver(b"\xff\xfe not a message at all")
    src.deliver(message(3))
    router.service.startService()
    assert src.tracked == {1, 3}
    with store.transaction() as s:
        reasons = s.scalars(select(UntrackedMessage.reason).where(UntrackedMessage.mailbox == "jane")).all()
    assert reasons == ["parse_error"]
    assert _state(store, "jane").cursor == "3"
    router.stop()


def test_loop_damping_holds_a_flood_from_one_sender(store, org, make_router) -> None:
    router = make_router([JANE], router={"loop_max_messages": 3, "loop_window_minutes": 10.0}, start=False)
    src = router.sources["jane"]
    for n in range(5):
        src.deliver(message(n, sender="autoreply@loop.test"))
    src.deliver(message(9))
    router.service.startService()
    assert src.tracked == {1, 2, 3, 6}
    with store.transaction() as s:
        held = s.scalars(select(UntrackedMessage.external_id).where(UntrackedMessage.reason == "loop")).all()
    assert held == ["4", "5"]
    # after the window the sender is welcome again
    router.advance(11 * 60)
    src.deliver(message(7, sender="autoreply@loop.test"))
    router.advance(60)
    assert 7 in src.tracked
    router.stop()


def test_polls_of_one_mailbox_never_overlap(store, org, make_router) -> None:
    """A tick whose mail call has not returned holds the LoopingCall: later intervals start no second poll."""
    mail = HeldRunner()
    router = make_router([JANE], start=False, mail=mail)
    router.sources["jane"].deliver(message(1))
    router.service.startService()
    assert len(mail.pending) == 1  # opening the source
    for _ in range(5):
        router.advance(60)
    assert len(mail.pending) == 1  # no second poll started while the first is in hand
    mail.release_all()
    assert _activities(store) == 1
    assert router.sources["jane"].calls.count("changes") == 1
    router.stop(release=mail.release_all)


def test_a_message_gone_before_its_fetch_is_skipped(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    for n in range(3):
        src.deliver(message(n))
    src.fail("fetch", MessageGone("UID 1 is no longer in INBOX"))
    router.service.startService()
    assert src.tracked == {2, 3} and _activities(store) == 2
    row = _state(store, "jane")
    assert (row.cursor, row.last_error) == ("3", None)
    router.stop()
