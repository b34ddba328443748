"""imaplib, guarded: a byte budget per command and a socket another thread can cut (see ``_guard``).

imaplib reads a literal whole once its ``{size}`` is announced; ``Guarded.read`` refuses one over the
command's budget before reading it, so a server never decides how much memory a download takes.
"""

from __future__ import annotations

import imaplib
import socket
from typing import Any, Optional

from abook.mailbox._guard import Guarded, Overspent


class Budgeted(Guarded):
    """imaplib with a byte budget per command: a literal over it is refused before it is read."""

    def readline(self) -> bytes:
        line: bytes = super().readline()  # type: ignore[misc]
        self.budget.spend(len(line))
        return line

    def read(self, size: int) -> bytes:
        if size > self.budget.left:  # refused before reading: what is over the budget is never allocated
            raise Overspent(self.budget.limit, size)
        self.budget.spend(size)
        return super().read(size)  # type: ignore[misc,no-any-return]


class IMAP4(Budgeted, imaplib.IMAP4):
    def _create_socket(self, timeout: Any) -> socket.socket:
        return self.guard_socket(super()._create_socket(timeout))


class IMAP4_SSL(Budgeted, imaplib.IMAP4_SSL):
    def _create_socket(self, timeout: Any) -> socket.socket:
        return self.guard_socket(imaplib.IMAP4._create_socket(self, timeout), self.ssl_context, self.host)


def literal(data: list, item: bytes) -> bytes | None:
    """The literal of the first FETCH response item named ``item`` (e.g. ``BODY[]``, also ``BODY[]<0>``)."""
    for part in data:
        if isinstance(part, tuple) and item in part[0]:
            return part[1]  # type: ignore[no-any-return]
    return None


def drop(conn: Optional[imaplib.IMAP4]) -> None:
    """Close a broken connection's socket without talking to the server."""
    if conn is not None:
        try:
            conn.shutdown()
        except OSError:
            pass
