"""POP3-only behaviour on the real Dovecot: the UIDL cursor stays bounded, deleting only when configured."""

from __future__ import annotations

import pytest

from abook.mailbox.errors import CursorInvalid
from abook.mailbox.pop3 import Pop3Source, decode_cursor
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

