"""One harness per backend for the IMailSource contract suite: a fresh mailbox, delivery, and a second,
independent client that reads back what the backend did (flags, presence), as a mail user would see it.

Comparison of bytes: Dovecot stores messages with LF line endings (as delivered into the Maildir here);
IMAP ``BODY[]`` and POP3 ``RETR`` hand them out with CRLF, as RFC 3501/1939 require, so a message
delivered as ``m`` is expected back as ``m`` with every line ending CRLF. The EWS responder returns the
MIME content exactly as it was delivered.
"""

from __future__ import annotations

import imaplib
import poplib
import ssl
import uuid
from typing import Any, Optional

from abook.config.mail import MailboxConfig
from abook.mailbox.interfaces import MessageRef
from tests.helpers import free_port


def make_message(subject: str) -> bytes:
    mid = uuid.uuid4().hex
    return (
        f"From: Alice <alice@example.com>\nTo: Bob <bob@example.org>\nSubject: {subject}\n"
        f"Message-ID: <{mid}@example.com>\nDate: Wed, 02 Dec 2026 10:00:00 +0000\nMIME-Version: 1.0\n"
        f"Content-Type: text/plain; charset=utf-8\n\nHello Bob,\n\nthis is {subject}.\n"
        # a line POP3 must dot-stuff, and one longer than poplib's 2048-byte line limit
        f".a line that starts with a dot\n.\n{'x' * 3000}\n-- \nAlice\n"
    ).encode()


def crlf(message: bytes) -> bytes:
    return message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


class Harness:
    #: whether the protocol keeps a tracked mark other clients can see
    has_marks = True

    def config(self, **overrides: Any) -> MailboxConfig:
        raise NotImplementedError

    def deliver(self, message: bytes) -> None:
        raise NotImplementedError

    def expected(self, message: bytes) -> bytes:
        return crlf(message)

    def is_unread(self, ref: MessageRef) -> bool:
        raise NotImplementedError

    def is_tracked(self, ref: MessageRef) -> bool:
        raise NotImplementedError

    def on_server(self, ref: MessageRef) -> bool:
        raise NotImplementedError

    def dead_config(self) -> MailboxConfig:
        return self.config(port=free_port(), host="127.0.0.1")

    def wrong_password_config(self) -> MailboxConfig:
        return self.config(password="not-the-password")


class DovecotHarness(Harness):
    def __init__(self, server: Any, kind: str, security: str) -> None:
        self.server = server
        self.kind = kind
        self.security = security
        self.user, self.password = server.add_user()
        self.has_marks = kind == "imap"

    def config(self, **overrides: Any) -> MailboxConfig:
        port_name = self.kind + ("s" if self.security == "tls" else "")
        values: dict[str, Any] = dict(
            name=f"{self.kind}-{self.security}-{self.user}", type=self.kind, host="127.0.0.1",
            port=self.server.ports[port_name], security=self.security, ca_file=self.server.ca_file,
            username=self.user, password=self.password, timeout=10.0,
        )
        values.update(overrides)
        return MailboxConfig.model_validate(values)

    def deliver(self, message: bytes) -> None:
        self.server.deliver(self.user, message)

    # -- a second client, to see what the backend left behind

    def imap(self) -> imaplib.IMAP4:
        return self.server.imap(self.user)

    def flags(self, ref: MessageRef) -> Optional[bytes]:
        """The message's IMAP flags; for a POP3 ref, of the message with that UIDL (%08Xu%08Xv: UID first)."""
        if self.kind == "imap":
            uid = int(ref.external_id.rsplit(":", 1)[-1])
        else:
            uid = int(ref.external_id[:8], 16)
        return self.server.flags(self.user, uid)

    def pop3_uidls(self) -> list[str]:
        ctx = ssl.create_default_context(cafile=self.server.ca_file)
        conn = poplib.POP3_SSL("127.0.0.1", self.server.ports["pop3s"], context=ctx, timeout=10)
        try:
            conn.user(self.user)
            conn.pass_(self.password)
            return [line.split()[1].decode() for line in conn.uidl()[1]]
        finally:
            conn.quit()

    def is_unread(self, ref: MessageRef) -> bool:
        """Unread as an IMAP client of the same Dovecot mailbox sees it (POP3 itself has no read state)."""
        flags = self.flags(ref)
        assert flags is not None, f"{ref} not found"
        return b"\\Seen" not in flags

    def is_tracked(self, ref: MessageRef) -> bool:
        flags = self.flags(ref)
        assert flags is not None, f"{ref} not found"
        return b"$CRMTracked" in flags

    def on_server(self, ref: MessageRef) -> bool:
        if self.kind == "imap":
            return self.flags(ref) is not None
        return ref.external_id in self.pop3_uidls()
