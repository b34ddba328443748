"""IMAP-only behaviour on the real Dovecot: UIDVALIDITY changes, other folders, read-only reading."""

from __future__ import annotations

import imaplib
import re

import pytest

from abook.mailbox.errors import CursorInvalid, MailboxMissing, MessageGone, TooLarge
from abook.mailbox.imap import ImapSource
from abook.mailbox.interfaces import MessageRef
from abook.tracking.parse import normalise_message_id
from tests.contract.harness import DovecotHarness, crlf, make_message


@pytest.fixture
def imap(dovecot_server) -> DovecotHarness:  # type: ignore[no-untyped-def]
    return DovecotHarness(dovecot_server, "imap", "tls")


def _append(conn: imaplib.IMAP4, folder: str, message: bytes) -> None:
    typ, data = conn.append(folder, "", None, crlf(message))
    assert typ == "OK", data


def test_uidvalidity_change_invalidates_the_cursor(imap: DovecotHarness) -> None:
    other = imap.imap()
    assert other.create("Tracked")[0] == "OK"
    _append(other, "Tracked", make_message("first"))
    source = ImapSource(imap.config(folder="Tracked"))
    try:
        batch = source.changes_blocking(None, 10)
        assert len(batch.messages) == 1
        # Someone rebuilds the folder: same name, new UIDVALIDITY, UIDs start again at 1.
        source.close_blocking()
        assert other.delete("Tracked")[0] == "OK"
        assert other.create("Tracked")[0] == "OK"
        again = make_message("again")
        _append(other, "Tracked", again)
        with pytest.raises(CursorInvalid, match="UIDVALIDITY"):
            source.changes_blocking(batch.cursor, 10)
        with pytest.raises(CursorInvalid):  # the old ref can no longer fetch a different message
            source.fetch_blocking(batch.messages[0])
        fresh = source.changes_blocking(None, 10)  # what the router does next: read the folder again
        assert [source.fetch_blocking(r) for r in fresh.messages] == [crlf(again)]
    finally:
        source.close_blocking()
        other.logout()


def test_missing_folder_is_mailbox_missing(imap: DovecotHarness) -> None:
    source = ImapSource(imap.config(folder="No Such Folder"))
    with pytest.raises(MailboxMissing, match="No Such Folder"):
        source.changes_blocking(None, 10)
    source.close_blocking()


def test_garbage_cursor_is_cursor_invalid(imap: DovecotHarness) -> None:
    source = ImapSource(imap.config())
    with pytest.raises(CursorInvalid):
        source.changes_blocking("not-a-cursor", 10)
    source.close_blocking()


def test_a_message_another_client_deleted_is_message_gone(imap: DovecotHarness) -> None:
    from abook.mailbox.errors import MessageGone

    imap.deliver(make_message("soon gone"))
    source = ImapSource(imap.config())
    try:
        (ref,) = source.changes_blocking(None, 10).messages
        other = imap.imap()
        other.select("INBOX")
        other.uid("STORE", ref.external_id.split(":")[1], "+FLAGS", "(\\Deleted)")
        other.expunge()
        other.logout()
        with pytest.raises(MessageGone):
            source.fetch_blocking(ref)
    finally:
        source.close_blocking()


def test_custom_keyword(imap: DovecotHarness) -> None:
    imap.deliver(make_message("custom"))
    source = ImapSource(imap.config(tracked_keyword="CrmLinked"))
    (ref,) = source.changes_blocking(None, 10).messages
    source.mark_tracked_blocking(ref)
    source.close_blocking()
    flags = imap.flags(ref)
    assert flags is not None and b"CrmLinked" in flags and b"$CRMTracked" not in flags


def test_non_ascii_folder_names_are_modified_utf7(imap: DovecotHarness) -> None:
    other = imap.imap()
    assert other.create('"Entw&APw-rfe"')[0] == "OK"  # "Entwürfe"
    sent = make_message("draft")
    _append(other, '"Entw&APw-rfe"', sent)
    other.logout()
    source = ImapSource(imap.config(folder="Entwürfe"))
    try:
        (ref,) = source.changes_blocking(None, 10).messages
        assert source.fetch_blocking(ref) == crlf(sent)
    finally:
        source.close_blocking()


def test_a_connection_the_server_dropped_is_opened_anew(imap: DovecotHarness) -> None:
    source = ImapSource(imap.config())
    try:
        cursor = source.changes_blocking(None, 10).cursor
        imap.server.kick(imap.user)  # idle logout, server restart: the kept connection is gone
        sent = make_message("after the drop")
        imap.deliver(sent)
        (ref,) = source.changes_blocking(cursor, 10).messages
        assert source.fetch_blocking(ref) == crlf(sent)
    finally:
        source.close_blocking()


def test_a_ref_from_an_earlier_uidvalidity_is_marked_by_its_message_id(imap: DovecotHarness) -> None:
    """What the router's re-marking does after a folder rebuild: Dovecot's SEARCH HEADER finds the message,
    the Message-ID each hit carries is compared, the keyword lands on it and the new ref comes back."""
    other = imap.imap()
    assert other.create("Rebuilt")[0] == "OK"
    kept, gone = make_message("kept"), make_message("gone")
    _append(other, "Rebuilt", kept)
    _append(other, "Rebuilt", gone)
    source = ImapSource(imap.config(folder="Rebuilt"))
    try:
        old = source.changes_blocking(None, 10).messages
        source.close_blocking()
        assert other.delete("Rebuilt")[0] == "OK" and other.create("Rebuilt")[0] == "OK"
        _append(other, "Rebuilt", make_message("a newcomer first, so UIDs shift"))
        _append(other, "Rebuilt", kept)
        ids = [normalise_message_id(re.search(rb"Message-ID: (<[^>]+>)", m).group(1).decode()) for m in (kept, gone)]
        moved = source.mark_tracked_blocking(MessageRef(old[0].external_id, message_id=ids[0]))
        assert moved is not None and moved.external_id.endswith(":2") and moved.external_id != old[0].external_id
        other.select("Rebuilt", readonly=True)
        _, data = other.uid("FETCH", "1:*", "(FLAGS)")
        flags = b" ".join(d for d in data if isinstance(d, bytes))
        assert flags.count(b"$CRMTracked") == 1 and re.search(rb"UID 2 FLAGS \([^)]*\$CRMTracked", flags)
        with pytest.raises(MessageGone, match="no message in it has its Message-ID"):
            source.mark_tracked_blocking(MessageRef(old[1].external_id, message_id=ids[1]))
    finally:
        source.close_blocking()
        other.logout()


def test_a_message_over_the_limit_is_not_downloaded_its_head_is(imap: DovecotHarness) -> None:
    sent = make_message("big") + b"z" * 200_000 + b"\n"
    imap.deliver(sent)
    source = ImapSource(imap.config())
    try:
        (ref,) = source.changes_blocking(None, 10).messages
        assert ref.size == len(crlf(sent))  # Dovecot's RFC822.SIZE
        with pytest.raises(TooLarge) as e:
            source.fetch_blocking(ref, limit=100_000)
        assert e.value.announced and e.value.size == ref.size
        assert e.value.head == crlf(sent)[:65536]  # a partial fetch, BODY.PEEK[]<0.65536>
    finally:
        source.close_blocking()
