"""POP3-only behaviour on the real Dovecot: the UIDL cursor stays bounded, deleting only when configured."""

from __future__ import annotations

import re

import pytest

from abook.mailbox.errors import CursorInvalid
from abook.mailbox.interfaces import MessageRef
from abook.mailbox.pop3 import Pop3Source, decode_cursor
from abook.tracking.parse import normalise_message_id
from tests.contract.harness import DovecotHarness, crlf, make_message


@pytest.fixture
def pop3(dovecot_server) -> DovecotHarness:  # type: ignore[no-untyped-def]
    return DovecotHarness(dovecot_server, "pop3", "tls")


def test_mark_tracked_leaves_mail_by_default_and_deletes_when_configured(pop3: DovecotHarness) -> None:
    for _ in range(2):
        pop3.deliver(make_message("m"))
    keep = Pop3Source(pop3.config())
    first, second = keep.changes_blocking(None, 10).messages
    keep.mark_tracked_blocking(first)
    keep.close_blocking()
    assert pop3.pop3_uidls() == [first.external_id, second.external_id]

    delete = Pop3Source(pop3.config(delete_after_tracking=True))
    delete.changes_blocking(None, 10)
    delete.mark_tracked_blocking(first)
    delete.close_blocking()
    assert pop3.pop3_uidls() == [second.external_id]


def test_cursor_forgets_uidls_that_left_the_server(pop3: DovecotHarness) -> None:
    for subject in ("a", "b", "c"):
        pop3.deliver(make_message(subject))
    source = Pop3Source(pop3.config())
    batch = source.changes_blocking(None, 10)
    assert len(decode_cursor(batch.cursor)) == 3
    source.remove_blocking(batch.messages[0])  # another client or the forward mailbox removes one
    new = make_message("d")
    pop3.deliver(new)
    later = source.changes_blocking(batch.cursor, 10)
    assert [source.fetch_blocking(r) for r in later.messages] == [crlf(new)]
    assert len(decode_cursor(later.cursor)) == 3  # b, c, d: a left the server and the cursor
    source.close_blocking()


def test_cursor_of_another_backend_is_rejected(pop3: DovecotHarness) -> None:
    source = Pop3Source(pop3.config())
    with pytest.raises(CursorInvalid):
        source.changes_blocking("1796221173:42", 10)
    source.close_blocking()



def test_deleting_checks_the_message_id_under_the_uidl_and_finds_it_by_that(pop3: DovecotHarness) -> None:
    """What the router's re-marking does when a UIDL no longer names the message it tracked: TOP n 0
    over Dovecot's session finds it by its Message-ID; a message that has gone leaves the others alone."""
    first, second = make_message("first"), make_message("second")
    pop3.deliver(first)
    pop3.deliver(second)
    ids = [normalise_message_id(re.search(rb"Message-ID: (<[^>]+>)", m).group(1).decode()) for m in (first, second)]
    source = Pop3Source(pop3.config(delete_after_tracking=True))
    try:
        a, b = source.changes_blocking(None, 10).messages
        # the message tracked as "a" is now under b's UIDL: the server reassigned them
        moved = source.mark_tracked_blocking(MessageRef(a.external_id, message_id=ids[1]))
        assert moved == MessageRef(b.external_id, None, ids[1])
        assert pop3.pop3_uidls() == [a.external_id]
        assert source.mark_tracked_blocking(MessageRef(a.external_id, message_id="gone@example.com")) is None
        assert pop3.pop3_uidls() == [a.external_id]  # not that one: its Message-ID is another's
    finally:
        source.close_blocking()
