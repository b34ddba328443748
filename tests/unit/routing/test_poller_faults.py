"""The poller under faults, on a Clock: repeated failures back off and alert, a lost message's sighting is
retired, an over-size message is left untracked, a mail operation past its deadline is cut."""

from __future__ import annotations

from sqlalchemy import select
from twisted.logger import LogLevel, capturedLogs

from abook.mailbox.errors import CursorInvalid, MessageGone, TooLarge, Unavailable
from abook.store.models import EmailSighting, UntrackedMessage
from tests.unit.routing.conftest import HeldRunner, message
from tests.unit.routing.test_poller import JANE, _activities, _state


def test_cursor_resets_in_a_row_back_off_and_alert(store, org, make_router) -> None:
    router = make_router([{**JANE, "interval": 10.0}], router={"alert_after_failures": 3, "max_backoff": 40.0},
                         start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.fail("changes", CursorInvalid("UIDVALIDITY changed"), times=3)
    with capturedLogs() as events:
        router.service.startService()  # fails: reset, no back-off (the re-read is due at the next tick)
        router.advance(10)  # fails again: a second reset in a row backs off one interval
        assert src.calls.count("changes") == 2
        router.advance(10)
        assert src.calls.count("changes") == 3  # third in a row: 20 s back-off
        for _ in range(2):
            router.advance(10)
        assert src.calls.count("changes") == 4  # the re-read: a success, but not yet a recovery
        assert _state(store, "jane").failures_in_row == 3
        router.advance(10)  # a poll from the stored cursor: recovered
        assert src.calls.count("changes") == 5
    alerts = [e for e in events if e["log_level"] == LogLevel.critical]
    assert [e["failures"] for e in alerts] == [3]
    row = _state(store, "jane")
    assert (row.failures_in_row, row.last_error) == (0, None) and _activities(store) == 1
    router.stop()


def test_a_message_gone_before_its_mark_has_its_sighting_retired(store, org, make_router) -> None:
    router = make_router([JANE], start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.deliver(message(2))
    src.fail("mark", MessageGone("no message in INBOX has its Message-ID"))
    router.service.startService()
    with store.transaction() as s:
        rows = s.execute(select(EmailSighting.external_id, EmailSighting.marked).order_by(EmailSighting.id)).all()
    assert [tuple(r) for r in rows] == [(None, False), ("2", True)]
    assert _state(store, "jane").last_error is None
    router.advance(60)  # never tried again
    assert src.calls.count("mark") == 2
    router.stop()


def test_an_over_size_message_is_left_untracked_and_the_cursor_moves_on(store, org, make_router) -> None:
    router = make_router([JANE], router={}, start=False)
    src = router.sources["jane"]
    src.deliver(message(1))
    src.deliver(message(2))
    head = message(1, subject="a huge one").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    src.fail("fetch", TooLarge("jane: UID 1: the server announced 90000000 bytes", 90_000_000, head))
    router.service.startService()
    assert _activities(store) == 1 and src.tracked == {2}  # not marked: it stays as it was
    with store.transaction() as s:
        row = s.execute(select(UntrackedMessage.reason, UntrackedMessage.detail, UntrackedMessage.subject)).one()
    assert tuple(row) == ("too_large", "90000000 bytes, more than 67108864 (the size the server announced: not "
                                       "downloaded)", "a huge one")
    assert _state(store, "jane").cursor == "2"
    router.stop()


def test_a_mail_operation_past_command_timeout_is_cut(store, org, make_router) -> None:
    mail = HeldRunner()
    router = make_router([{**JANE, "command_timeout": 120.0}], start=False, mail=mail)
    src = router.sources["jane"]
    router.service.startService()
    mail.release_next()  # the source is opened; now the listing hangs
    assert [f.__name__ for _, f, _ in mail.pending] == ["changes_blocking"]
    router.advance(119)
    assert "abort" not in src.calls
    router.advance(1)
    assert src.calls[-1] == "abort"
    src.fail("changes", Unavailable("jane: socket error: EOF"))  # what a cut connection answers
    mail.release_all()
    assert _state(store, "jane").last_error == ("Unavailable: jane: listing new mail took more than command_timeout "
                                                "(120s)")
    router.stop(release=mail.release_all)


def test_stopping_cuts_a_slow_operation_after_a_grace(store, org, make_router) -> None:
    mail = HeldRunner()
    router = make_router([JANE], start=False, mail=mail)
    src = router.sources["jane"]
    router.service.startService()
    mail.release_next()
    stopping = router.service.stopService()
    router.advance(4.9)
    assert "abort" not in src.calls
    router.advance(0.2)  # STOP_GRACE: 5 s
    assert src.calls[-1] == "abort"
    src.fail("changes", Unavailable("jane: socket error: EOF"))
    mail.release_all()
    results: list = []
    stopping.addBoth(results.append)
    assert results == [None]
    assert _state(store, "jane").last_error == "Unavailable: jane: listing new mail was cut short: the daemon is stopping"


def test_operations_after_a_stop_share_the_grace_left(store, org, make_router) -> None:
    mail = HeldRunner()
    router = make_router([JANE], start=False, mail=mail)
    src = router.sources["jane"]
    src.deliver(message(1))
    router.service.startService()
    mail.release_next()  # the source is opened; the listing is in hand
    router.service.stopService()
    router.advance(2)
    mail.release_next()  # the listing answers: the download starts with 3 s of the grace left, not 300
    assert [f.__name__ for _, f, _ in mail.pending] == ["fetch_blocking"]
    router.advance(2.9)
    assert "abort" not in src.calls
    router.advance(0.2)
    assert src.calls[-1] == "abort"
    src.fail("fetch", Unavailable("jane: socket error: EOF"))
    mail.release_all()
    assert _activities(store) == 0
    assert _state(store, "jane").last_error == ("Unavailable: jane: downloading a message was cut short: the daemon "
                                                "is stopping")
