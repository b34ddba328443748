"""What keeps a slow or hostile IMAP/POP3 server from holding a mail thread: a connection another thread can
cut, and a cap on what one command may read.

- ``Cutter`` holds the socket of a source's live connection. ``cut()`` (any thread: the router's command
  deadline, shutdown) shuts it down, so a read blocked in the mail thread returns at once and the
  operation fails as Unavailable; a cut that comes while no socket is attached (connecting) fails the
  operation as soon as the connection exists. The per-read ``timeout`` alone cannot do this: a server
  that sends a few bytes before each read would time out never.
- ``Budget`` counts the bytes one command reads and refuses more than its limit.
"""

from __future__ import annotations

import socket
import ssl
import threading
from typing import Any, Optional

#: what a command other than a message download may read (listings, sizes, headers, greetings)
COMMAND_BYTES = 16 * 1024 * 1024


class Cut(OSError):
    """The connection was cut by ``Cutter.cut`` (a deadline or shutdown), not by the server."""


class Cutter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._cut = False

    def attach(self, sock: socket.socket) -> None:
        """The connection's socket (again after a TLS wrap, which makes a new socket object)."""
        with self._lock:
            self._sock = sock
            cut = self._cut
        if cut:
            self._shutdown(sock)
            raise Cut("the operation was cut short")

    def detach(self) -> None:
        with self._lock:
            self._sock = None

    @property
    def is_cut(self) -> bool:
        return self._cut

    def check(self) -> None:
        """Raise Cut when a cut is pending (before connecting again, say)."""
        if self._cut:
            raise Cut("the operation was cut short")

    def reset(self) -> None:
        """Forget a cut once the operation it meant has failed (the source is closed after it)."""
        with self._lock:
            self._cut = False

    def cut(self) -> None:
        with self._lock:
            self._cut = True
            sock = self._sock
            if sock is not None:
                self._shutdown(sock)

    @staticmethod
    def _shutdown(sock: socket.socket) -> None:
        # socket.socket's own shutdown, also for an SSLSocket: SSLSocket.shutdown would drop its SSL object
        # under the reading thread's feet; the plain one only ends the TCP stream, and the read sees EOF
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:  # already closed
            pass


class Guarded:
    """Mixin for a blocking client class (imaplib.IMAP4, poplib.POP3): a byte budget per command, and its
    socket handed to a Cutter as soon as it exists (``guard_socket`` in its ``_create_socket``)."""

    cutter: "Cutter"
    budget: "Budget"

    def __init__(self, *args: Any, cutter: Cutter, **kwargs: Any) -> None:
        self.cutter = cutter
        self.budget = Budget()
        super().__init__(*args, **kwargs)  # type: ignore[call-arg]

    def guard_socket(self, sock: socket.socket, context: Optional[ssl.SSLContext] = None,
                     host: str = "") -> socket.socket:
        """Attach ``sock``; with ``context``, wrap it in TLS, attached before the handshake so that a cut
        reaches that too."""
        self.cutter.attach(sock)
        if context is not None:
            sock = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
            self.cutter.attach(sock)
            sock.do_handshake()
        return sock


class Budget:
    """Bytes one command may still read; ``spend`` raises ``Overspent`` past the limit."""

    def __init__(self, limit: int = COMMAND_BYTES) -> None:
        self.limit = limit
        self.left = limit

    def start(self, limit: int = COMMAND_BYTES) -> None:
        self.limit = self.left = limit

    def spend(self, n: int) -> None:
        self.left -= n
        if self.left < 0:
            raise Overspent(self.limit)


class Overspent(Exception):
    """A command read more than its budget: the server sent more than it announced, or more than allowed.
    ``wanted``: the size of the literal it announced, when that was refused before reading."""

    def __init__(self, limit: int, wanted: int | None = None) -> None:
        what = f"a {wanted}-byte literal" if wanted is not None else "more"
        super().__init__(f"the server sent {what} where at most {limit} bytes were allowed for one command")
        self.limit = limit
        self.wanted = wanted
