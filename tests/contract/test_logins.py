"""Logins on the real Dovecot beyond the contract suite: credentials outside ASCII."""

from __future__ import annotations

import pytest

from tests.contract.harness import DovecotHarness, crlf, make_message


@pytest.mark.parametrize(("kind", "security"), [("imap", "tls"), ("imap", "none"), ("pop3", "tls")])
def test_non_ascii_password_logs_in(dovecot_server, kind: str, security: str) -> None:  # type: ignore[no-untyped-def]
    """IMAP falls back from LOGIN (ASCII only in imaplib) to SASL PLAIN in UTF-8; POP3 PASS sends UTF-8."""
    from abook.mailbox.registry import open_source
    from tests.fixtures.dovecot import UNICODE_PASSWORD, UNICODE_USER

    harness = DovecotHarness(dovecot_server, kind, security)
    harness.user, harness.password = UNICODE_USER, UNICODE_PASSWORD
    sent = make_message("non-ASCII password")
    source = open_source(harness.config())
    try:
        cursor = source.changes_blocking(None, 1000).cursor  # the one user is shared by these cases
        harness.deliver(sent)
        (ref,) = source.changes_blocking(cursor, 10).messages
        assert source.fetch_blocking(ref) == crlf(sent)
    finally:
        source.close_blocking()


@pytest.mark.parametrize(("kind", "security"), [("imap", "tls"), ("imap", "starttls"), ("pop3", "tls"),
                                                ("pop3", "starttls")])
def test_untrusted_certificate_is_refused(dovecot_server, kind: str, security: str) -> None:  # type: ignore[no-untyped-def]
    """Without the test CA (ca_file), the self-signed certificate fails verification: no login is sent."""
    from abook.mailbox.errors import Unavailable
    from abook.mailbox.registry import open_source

    harness = DovecotHarness(dovecot_server, kind, security)
    source = open_source(harness.config(ca_file=None))
    with pytest.raises(Unavailable, match="TLS certificate not trusted: self-signed certificate"):
        source.changes_blocking(None, 10)
    source.close_blocking()
