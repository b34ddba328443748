"""Mailbox health: which errors are permanent, and how long to back off after transient ones.

Permanent errors (bad password, missing mailbox, an owner the store does not know) count towards
``[router] disable_after_failures``; once reached the mailbox is disabled with an alert until
``abook mailbox enable NAME``. Everything else is transient: the next polls are skipped for an
exponentially growing delay (capped), or for as long as the server asked (``Unavailable.retry_after``).
"""

from __future__ import annotations

from twisted.python.failure import Failure

from abook.mailbox.errors import AuthFailed, MailboxMissing, Unavailable


class OwnerUnknown(Exception):
    """A mailbox's configured owner is no user or queue in the store (permanent until it is created)."""


PERMANENT = (AuthFailed, MailboxMissing, OwnerUnknown)


def is_permanent(failure: Failure) -> bool:
    return failure.check(*PERMANENT) is not None


def backoff_delay(failures: int, interval: float, max_backoff: float, retry_after: float | None = None) -> float:
    """Seconds to wait after the ``failures``-th transient failure in a row (1, 2, ...)."""
    if retry_after is not None and retry_after > 0:
        return min(float(retry_after), max_backoff)
    return min(interval * (2 ** max(failures - 1, 0)), max_backoff)


def retry_after_of(failure: Failure) -> float | None:
    if failure.check(Unavailable):
        return failure.value.retry_after  # type: ignore[union-attr]
    return None


def describe(failure: Failure) -> str:
    """One line for ``MailboxState.last_error``: the error's class and message (backends keep secrets out)."""
    return f"{failure.type.__name__}: {failure.getErrorMessage()}"[:2000]
