"""What the fake IMAP and POP3 servers share: a threaded TCP server on 127.0.0.1 (real sockets), a register of
open connections a test can drop, fault switches per command, and an event log a test can wait on.

The fake servers grew out of the fake IMAP server of the project's faults review (2026-12-07); they serve one
mailbox to any login and let the test change it under the client and break the connection on purpose.
"""

from __future__ import annotations

import base64
import os
import socket
import socketserver
import threading
import time
from collections import Counter
from typing import Callable, Iterable, Iterator

#: literal and message bodies are written in pieces of this size (a fault can stop between them)
CHUNK = 64 * 1024


class FaultServer:
    """Base of FakeImapServer and FakePop3Server: ``handle(conn)`` serves one connection."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.events: list[str] = []
        #: (command, "before" | "after") -> how many more times to drop the connection there
        self._drops: Counter[tuple[str, str]] = Counter()
        #: (command, "before" | "after") -> what to do right after such a drop (e.g. rebuild the folder)
        self._then: dict[tuple[str, str], Callable[[], None]] = {}
        #: (bytes, seconds): message bodies are written that many bytes at a time, that long apart
        self.trickle: tuple[int, float] | None = None
        #: message bodies stop after their first 100 bytes and the connection hangs
        self.hang_body = False
        #: bytes of message bodies written to clients in all
        self.body_sent = 0
        self.connections = 0
        self._open: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._server: socketserver.ThreadingTCPServer | None = None
        self._thread: threading.Thread | None = None

    # -- the test's side

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def start(self) -> "FaultServer":
        fake = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                fake._serve(self)

        class Server(socketserver.ThreadingTCPServer):
            allow_reuse_address = True
            daemon_threads = True
            block_on_close = False

        self._server = Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=type(self).__name__,
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.drop_connections()

    def drop_connections(self) -> None:
        """Close every open connection at once, as a server restart does."""
        with self.lock:
            conns = list(self._open)
        for sock in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def fail(self, command: str, times: int = 1, when: str = "before", then: Callable[[], None] | None = None
             ) -> None:
        """Drop the connection on the next ``times`` ``command``s: ``before`` doing it, or ``after`` (done,
        but the answer never sent); ``then`` runs right after each such drop."""
        with self.lock:
            self._drops[(command.upper(), when)] += times
            if then is not None:
                self._then[(command.upper(), when)] = then

    def clear_faults(self) -> None:
        with self.lock:
            self._drops.clear()
            self._then.clear()
            self.trickle = None
            self.hang_body = False

    def log(self, event: str) -> None:
        with self.lock:
            self.events.append(event)

    def count(self, prefix: str) -> int:
        with self.lock:
            return sum(1 for e in self.events if e.startswith(prefix))

    def wait_for(self, check: Callable[[], bool], timeout: float = 30.0, what: str = "the server") -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; events: {self.events[-20:]}")
            self._stopping.wait(0.02)

    # -- the connection's side

    def _serve(self, handler: socketserver.StreamRequestHandler) -> None:
        # answers go out in several small writes: without this, Nagle's algorithm and the client's delayed
        # ACK hold each one back 40 ms
        handler.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.lock:
            self.connections += 1
            self._open.add(handler.request)
        self.log(f"connect #{self.connections}")
        try:
            self.handle(handler)
        except OSError as e:  # the client went away (or a drop cut the socket): the connection ends
            self.log(f"connection ended: {type(e).__name__}")
        finally:
            with self.lock:
                self._open.discard(handler.request)

    def handle(self, handler: socketserver.StreamRequestHandler) -> None:
        raise NotImplementedError

    def drop_now(self, command: str, when: str) -> bool:
        """Whether a fault asks to drop the connection at this point (and use it up)."""
        with self.lock:
            key = (command.upper(), when)
            if self._drops[key] <= 0:
                return False
            self._drops[key] -= 1
            self.events.append(f"drop {when} {command.upper()}")
            then = self._then.get(key)
        if then is not None:
            then()
        return True

    def write_body(self, handler: socketserver.StreamRequestHandler, pieces: Iterable[bytes]) -> bool:
        """Write a message body with the trickle and hang faults; False if the connection should end."""
        trickle, hang = self.trickle, self.hang_body
        for piece in _pieces(pieces, trickle[0] if trickle else CHUNK):
            if hang:
                handler.wfile.write(piece[:100])
                self.log("hanging")
                self._stopping.wait(3600)
                return False
            handler.wfile.write(piece)
            with self.lock:
                self.body_sent += len(piece)
            if trickle and self._stopping.wait(trickle[1]):
                return False
        return True


def _pieces(parts: Iterable[bytes], size: int) -> Iterator[bytes]:
    for part in parts:
        view = memoryview(part)
        for start in range(0, len(view), size):
            yield bytes(view[start:start + size])


def message(n: int, tag: str = "fake", sender: str = "carl@customer.test", to: str = "jane@example.com",
            body: bytes = b"hello\r\n", subject: str = "") -> bytes:
    """A small message with a unique Message-ID (``<tag-n@customer.test>``) from a known contact."""
    return (f"From: Carl Customer <{sender}>\r\nTo: {to}\r\nSubject: {subject or f'{tag} {n}'}\r\n"
            f"Message-ID: <{tag}-{n}@customer.test>\r\nDate: Mon, 07 Dec 2026 11:00:00 +0000\r\n\r\n").encode() + body


def big_body(size: int) -> bytes:
    """A plain-text body of about ``size`` bytes in 1000-byte lines."""
    line = b"y" * 998 + b"\r\n"
    return line * (size // len(line) + 1)


def message_id_of(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"message-id:"):
            return line.split(b":", 1)[1].strip().decode()
    return ""


def large_message(size: int, kind: str = "attachments") -> bytes:
    """A message of about ``size`` bytes: a short text and two base64 attachments, or one text body."""
    if kind == "text":
        return message(1, tag="large", body=big_body(size))
    half = base64.encodebytes(os.urandom(size * 3 // 8)).replace(b"\n", b"\r\n")
    parts = [b"--B\r\nContent-Type: text/plain\r\n\r\nThe scans.\r\n"]
    for name in (b"scan1.tif", b"scan2.tif"):
        parts.append(b"--B\r\nContent-Type: image/tiff\r\nContent-Transfer-Encoding: base64\r\n"
                     b"Content-Disposition: attachment; filename=" + name + b"\r\n\r\n" + half)
    parts.append(b"--B--\r\n")
    head = message(1, tag="large", body=b"").replace(b"\r\n\r\n", b"\r\nMIME-Version: 1.0\r\n"
                                                     b"Content-Type: multipart/mixed; boundary=B\r\n\r\n", 1)
    return head + b"".join(parts)
