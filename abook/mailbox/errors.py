"""Mailbox errors, translated at each backend's edge from its library's own exceptions."""

from __future__ import annotations


class MailboxError(Exception):
    """A mailbox operation failed."""


class AuthFailed(MailboxError):
    """Permanent: wrong credentials. The router disables the mailbox after the configured failures."""


class MailboxMissing(MailboxError):
    """Permanent: the mailbox or folder does not exist."""


class Unavailable(MailboxError):
    """Transient: connection refused, timeout, server error. Retry after ``retry_after`` seconds."""

    def __init__(self, msg: str, retry_after: float | None = None) -> None:
        super().__init__(msg)
        self.retry_after = retry_after


class RateLimited(Unavailable):
    """Transient: the server asks to back off (EWS ErrorServerBusy BackOffMilliseconds)."""


class CursorInvalid(MailboxError):
    """The stored cursor no longer applies (UIDVALIDITY changed, EWS sync state rejected)."""


class MessageGone(MailboxError):
    """The message is no longer in the mailbox (deleted or moved by someone else since it was listed)."""


class TooLarge(MailboxError):
    """The message is larger than the limit (``tracking.max_message_bytes``): the size the server announced
    was over it, so it was not downloaded, or the server sent more and was cut off at the limit. It stays
    in its mailbox; ``head`` holds its first bytes (at most ``HEAD_BYTES``), for the admin's list."""

    def __init__(self, msg: str, size: int, head: bytes = b"", announced: bool = True) -> None:
        super().__init__(msg)
        self.size = size
        self.head = head
        #: True: the announced size was over the limit (not downloaded); False: cut off while downloading
        self.announced = announced
