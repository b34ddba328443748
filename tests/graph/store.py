"""The Graph replay responder's state: mailboxes with folders of messages, a change log for delta queries,
inbox rules, and what was sent. Plain data, guarded by the responder's lock.

Delta queries follow "Use delta query to track changes in Microsoft Graph data" and "message: delta"
(learn.microsoft.com): a round starts from the folder's initial delta URL (every message now in the
folder) or from a ``@odata.deltaLink`` (what changed since that link was issued: created and updated
messages in full or as ``$select`` names them, deleted or moved ones as ``{"id", "@removed": {"reason"}}``);
its pages link on with ``@odata.nextLink`` (``$skiptoken``) until the last, which carries the
``@odata.deltaLink`` (``$deltatoken``). A page holds at most ``Prefer: odata.maxpagesize`` entries.
Tokens are opaque, one-use-safe (a page link can be read again and gives the same page), and can be
expired by the test (410 ``SyncStateNotFound``), as Exchange expires them when its token cache overflows.
"""

from __future__ import annotations

import base64
import itertools
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.policy import compat32
from typing import Any, Optional

FOLDERS = ("inbox", "sentitems", "deleteditems", "contacts")


def new_id() -> str:
    """An opaque id shaped like Exchange's immutable ids (base64url)."""
    return base64.urlsafe_b64encode(b"AAkALg" + uuid.uuid4().bytes + uuid.uuid4().bytes).decode().rstrip("=")


@dataclass
class Message:
    id: str
    mailbox: str
    folder: str
    mime: bytes
    seq: int
    categories: list[str] = field(default_factory=list)
    #: singleValueExtendedProperties: id ("Integer {guid} Name crmLinkState") -> value
    extended: dict[str, str] = field(default_factory=dict)
    is_read: bool = False
    deleted: bool = False

    def header(self, name: str) -> str:
        return str(message_from_bytes(self.mime, policy=compat32).get(name, "")).strip()

    def resource(self, select: Optional[list[str]]) -> dict[str, Any]:
        full = {
            "@odata.type": "#microsoft.graph.message", "id": self.id, "subject": self.header("Subject"),
            "internetMessageId": self.header("Message-ID"), "isRead": self.is_read, "isDraft": False,
            "categories": list(self.categories), "parentFolderId": self.folder,
        }
        if not select:
            return full
        return {k: v for k, v in full.items() if k in ("@odata.type", "id") or k in select}


@dataclass
class Rule:
    id: str
    body: dict[str, Any]


@dataclass
class Mailbox:
    address: str
    rules: list[Rule] = field(default_factory=list)
    #: (mailbox address, raw MIME as sent) per sendMail call
    sent: list[bytes] = field(default_factory=list)


@dataclass
class Round:
    """One delta round in progress: the entries it hands out, page by page, and the token it ends with."""

    mailbox: str
    folder: str
    entries: list[dict[str, Any]]
    end_seq: int
    select: Optional[list[str]]


class MailStore:
    def __init__(self) -> None:
        self.mailboxes: dict[str, Mailbox] = {}
        self.messages: dict[str, Message] = {}
        self._seq = itertools.count(1)
        self.seq = 0
        #: skiptoken -> round; deltatoken -> (mailbox, folder, seq)
        self.rounds: dict[str, Round] = {}
        self.delta_tokens: dict[str, tuple[str, str, int, Optional[list[str]]]] = {}
        self.expired: set[str] = set()
        #: removals delta reports: (mailbox, folder, message id, seq)
        self.tombstones: list[tuple[str, str, str, int]] = []
        #: the next delta page hands out its first entry twice (Graph may repeat an entity in a round)
        self.repeat_next = False
        #: entries the next delta page hands out first (a removal before a change of the same id, say)
        self.inject_next: list[dict[str, Any]] = []

    def tick(self) -> int:
        self.seq = next(self._seq)
        return self.seq

    def add_mailbox(self, address: str) -> Mailbox:
        return self.mailboxes.setdefault(address.lower(), Mailbox(address.lower()))

    def deliver(self, address: str, mime: bytes, folder: str = "inbox") -> Message:
        m = Message(new_id(), address.lower(), folder, mime, self.tick())
        self.messages[m.id] = m
        return m

    def in_folder(self, address: str, folder: str) -> list[Message]:
        return [m for m in self.messages.values() if m.mailbox == address and m.folder == folder]

    def touch(self, m: Message) -> None:
        m.seq = self.tick()

    def move(self, m: Message, folder: str) -> None:
        """A move is, to delta on the old folder, a removal (reason "deleted"); a new entry in the new one."""
        self.tombstones.append((m.mailbox, m.folder, m.id, self.tick()))
        m.folder = folder
        m.seq = self.seq

    # -- delta

    def start_round(self, mailbox: str, folder: str, since: Optional[int], select: Optional[list[str]]) -> str:
        if since is None:
            entries = [m.resource(select) for m in sorted(self.in_folder(mailbox, folder), key=lambda m: m.seq)]
        else:
            changed = sorted((m for m in self.in_folder(mailbox, folder) if m.seq > since), key=lambda m: m.seq)
            entries = [m.resource(select) for m in changed]
            entries += [{"id": mid, "@removed": {"reason": "deleted"}}
                        for (mb, f, mid, seq) in self.tombstones if mb == mailbox and f == folder and seq > since]
        token = uuid.uuid4().hex
        self.rounds[token] = Round(mailbox, folder, entries, self.seq, select)
        return token

    def issue_delta_token(self, r: Round) -> str:
        token = uuid.uuid4().hex
        self.delta_tokens[token] = (r.mailbox, r.folder, r.end_seq, r.select)
        return token

    def expire_all(self, mailbox: str) -> None:
        """Every outstanding skip and delta token of the mailbox answers 410 from now on."""
        for token, r in self.rounds.items():
            if r.mailbox == mailbox:
                self.expired.add(token)
        for token, (mb, *_rest) in self.delta_tokens.items():
            if mb == mailbox:
                self.expired.add(token)
