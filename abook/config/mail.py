"""Mailbox sections: ``[[mailboxes]]``, one table per polled mailbox (POP3, IMAP, EWS, forward).

(Skeleton: the mailbox backends work extends the fields; the router reads them.)
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field

from abook.config.base import SecretValue, Section


class MailboxConfig(Section):
    #: unique name; the store keys the mailbox's cursor and health by it
    name: str
    type: Literal["pop3", "imap", "ews"]
    #: "forward": this is the forward mailbox (owner worked out per message); "router": an owner's own
    role: Literal["router", "forward"] = "router"
    #: owner of a router mailbox: a CRM user name (domainname) or "queue:<email address>"
    owner: Optional[str] = None
    host: str = "127.0.0.1"
    port: Optional[int] = None
    #: "tls" (implicit TLS), "starttls", or "none" (loopback testing only)
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Optional[str] = None
    username: Optional[str] = None
    password: Optional[SecretValue] = None
    #: IMAP folder / EWS folder to read
    folder: str = "INBOX"
    #: seconds between polls of this mailbox
    interval: float = Field(default=60.0, gt=0)
    #: POP3 only: delete messages after tracking (default: leave them on the server)
    delete_after_tracking: bool = False
    #: messages fetched per poll at most
    batch_size: int = Field(default=100, ge=1, le=10000)
