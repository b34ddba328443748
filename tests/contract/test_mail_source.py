"""The IMailSource contract, run against every backend: POP3 and IMAP on a real Dovecot, EWS by replay.

Fetched bytes are compared as tests/contract/harness.py explains (IMAP/POP3 give CRLF line endings).
"""

from __future__ import annotations

from typing import Iterator

import pytest

from abook.config.mail import MailboxConfig
from abook.mailbox.errors import AuthFailed, Unavailable
from abook.mailbox.interfaces import IMailSource
from abook.mailbox.registry import open_source
from tests.contract.harness import Harness, make_message


@pytest.fixture
def source(mail_backend: Harness) -> Iterator[IMailSource]:
    s = open_source(mail_backend.config())
    yield s
    s.close_blocking()


def deliver(harness: Harness, *subjects: str) -> list[bytes]:
    messages = [make_message(s) for s in subjects]
    for m in messages:
        harness.deliver(m)
    return messages


def test_empty_mailbox_gives_an_empty_batch_and_a_cursor(source: IMailSource) -> None:
    batch = source.changes_blocking(None, 10)
    assert batch.messages == ()
    assert batch.more is False
    assert isinstance(batch.cursor, str)
    assert source.changes_blocking(batch.cursor, 10).messages == ()


def test_new_messages_come_once_with_their_exact_bytes(mail_backend: Harness, source: IMailSource) -> None:
    first = source.changes_blocking(None, 10)
    sent = deliver(mail_backend, "one", "two", "three")
    batch = source.changes_blocking(first.cursor, 10)
    assert len(batch.messages) == 3 and batch.more is False
    assert len({ref.external_id for ref in batch.messages}) == 3
    raws = [source.fetch_blocking(ref) for ref in batch.messages]
    assert raws == [mail_backend.expected(m) for m in sent]
    for ref, raw in zip(batch.messages, raws):
        assert ref.size is None or ref.size == len(raw)
    assert source.changes_blocking(batch.cursor, 10).messages == ()

    later = deliver(mail_backend, "four", "five")
    batch2 = source.changes_blocking(batch.cursor, 10)
    assert [source.fetch_blocking(ref) for ref in batch2.messages] == [mail_backend.expected(m) for m in later]
    assert not {r.external_id for r in batch2.messages} & {r.external_id for r in batch.messages}
    assert source.changes_blocking(batch2.cursor, 10).messages == ()


def test_cursor_survives_a_restart(mail_backend: Harness) -> None:
    """A new source (a restarted daemon) given the stored cursor sees only what came after it."""
    deliver(mail_backend, "old")
    s1 = open_source(mail_backend.config())
    cursor = s1.changes_blocking(None, 10).cursor
    s1.close_blocking()
    new = deliver(mail_backend, "new")
    s2 = open_source(mail_backend.config())
    try:
        batch = s2.changes_blocking(cursor, 10)
        assert [s2.fetch_blocking(r) for r in batch.messages] == [mail_backend.expected(new[0])]
    finally:
        s2.close_blocking()


def test_limit_is_respected_and_more_says_so(mail_backend: Harness, source: IMailSource) -> None:
    sent = deliver(mail_backend, "m1", "m2", "m3", "m4", "m5")
    got: list[bytes] = []
    cursor = None
    sizes_and_more = []
    for _ in range(4):
        batch = source.changes_blocking(cursor, 2)
        sizes_and_more.append((len(batch.messages), batch.more))
        got += [source.fetch_blocking(r) for r in batch.messages]
        cursor = batch.cursor
    assert sizes_and_more == [(2, True), (2, True), (1, False), (0, False)]
    assert got == [mail_backend.expected(m) for m in sent]


def test_reading_from_no_cursor_gives_everything(mail_backend: Harness, source: IMailSource) -> None:
    deliver(mail_backend, "a", "b")
    assert len(source.changes_blocking(None, 10).messages) == 2
    assert len(source.changes_blocking(None, 10).messages) == 2


def test_fetching_leaves_the_message_unread_and_on_the_server(mail_backend: Harness, source: IMailSource) -> None:
    deliver(mail_backend, "keep me")
    (ref,) = source.changes_blocking(None, 10).messages
    source.fetch_blocking(ref)
    source.close_blocking()
    assert mail_backend.on_server(ref)
    assert mail_backend.is_unread(ref)


def test_mark_tracked_is_visible_to_another_client(mail_backend: Harness, source: IMailSource) -> None:
    deliver(mail_backend, "track me", "leave me")
    ref, other = source.changes_blocking(None, 10).messages
    if mail_backend.has_marks:
        assert not mail_backend.is_tracked(ref)
    source.mark_tracked_blocking(ref)
    source.mark_tracked_blocking(ref)  # idempotent
    source.close_blocking()
    assert mail_backend.on_server(ref) and mail_backend.is_unread(ref)
    if mail_backend.has_marks:
        assert mail_backend.is_tracked(ref)
        assert not mail_backend.is_tracked(other)
    # POP3 has no flags: marking is documented as a no-op, and the message stays untouched.


def test_marking_does_not_disturb_reading(mail_backend: Harness, source: IMailSource) -> None:
    sent = deliver(mail_backend, "x", "y")
    batch = source.changes_blocking(None, 10)
    source.mark_tracked_blocking(batch.messages[0])
    assert source.fetch_blocking(batch.messages[1]) == mail_backend.expected(sent[1])
    more = deliver(mail_backend, "z")
    assert [source.fetch_blocking(r) for r in source.changes_blocking(batch.cursor, 10).messages] == [
        mail_backend.expected(more[0])
    ]


def test_remove_deletes_only_that_message(mail_backend: Harness, source: IMailSource) -> None:
    deliver(mail_backend, "wrapper", "other")
    gone, kept = source.changes_blocking(None, 10).messages
    source.remove_blocking(gone)
    source.close_blocking()
    assert not mail_backend.on_server(gone)
    assert mail_backend.on_server(kept)


def test_wrong_password_is_auth_failed_and_never_shows_the_password(mail_backend: Harness) -> None:
    config: MailboxConfig = mail_backend.wrong_password_config()
    s = open_source(config)
    with pytest.raises(AuthFailed) as e:
        s.changes_blocking(None, 10)
    s.close_blocking()
    assert "not-the-password" not in str(e.value) and "not-the-password" not in repr(e.value)
    assert "not-the-password" not in repr(s) and "not-the-password" not in repr(config)


def test_nothing_listening_is_unavailable(mail_backend: Harness) -> None:
    s = open_source(mail_backend.dead_config())
    with pytest.raises(Unavailable):
        s.changes_blocking(None, 10)
    s.close_blocking()


def test_close_is_clean_and_the_source_reconnects(mail_backend: Harness) -> None:
    s = open_source(mail_backend.config())
    s.close_blocking()  # never opened
    deliver(mail_backend, "hello")
    assert len(s.changes_blocking(None, 10).messages) == 1
    s.close_blocking()
    s.close_blocking()  # twice
    assert len(s.changes_blocking(None, 10).messages) == 1  # used again after close: connects anew
    s.close_blocking()

