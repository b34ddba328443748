"""A small POP3 server with one maildrop, for fault tests (real sockets on 127.0.0.1, see fault_server).

It serves what ``Pop3Source`` sends: USER, PASS, STAT, LIST, UIDL, TOP, RETR, DELE, RSET, NOOP, QUIT. A
session sees the maildrop as it was at login, numbered from 1; deletions take effect at QUIT only, as RFC
1939 has it (a dropped connection deletes nothing). The test changes the maildrop under the client
(``deliver``, ``expunge``, ``renumber``: every message gets a new UIDL, as after a server migration, and
the order changes) and breaks things on purpose (the base's drops, trickle and hang;
``garbage_greeting``; ``announce`` to lie about sizes; ``reuse_uidls``: UIDLs are the message numbers, so
an expunge makes a UIDL name another message).
"""

from __future__ import annotations

import itertools
import os
import socketserver
from dataclasses import dataclass

from tests.fakes.fault_server import FaultServer, message_id_of


@dataclass
class Pop3Message:
    uidl: str
    raw: bytes

    @property
    def message_id(self) -> str:
        return message_id_of(self.raw)


class FakePop3Server(FaultServer):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[Pop3Message] = []
        #: UIDL -> the size LIST announces instead of the real size
        self.announce: dict[str, int] = {}
        self.garbage_greeting = False
        self.reuse_uidls = False
        #: Message-IDs of the messages the client deleted (DELE committed by QUIT)
        self.deleted: list[str] = []
        self._serial = itertools.count(1)
        self._generation = 0

    # -- the test's side

    def deliver(self, raw: bytes) -> str:
        with self.lock:
            uidl = f"g{self._generation}-{next(self._serial)}"
            self.messages.append(Pop3Message(uidl, raw))
            return uidl

    def expunge(self, message_id: str) -> None:
        """Another client (or the admin) removes a message."""
        with self.lock:
            self.messages = [m for m in self.messages if m.message_id != message_id]

    def renumber(self) -> None:
        """A migration: every message gets a new UIDL, and the maildrop's order is reversed."""
        with self.lock:
            self._generation += 1
            self.messages.reverse()
            for m in self.messages:
                m.uidl = f"g{self._generation}-{next(self._serial)}"
            self.announce.clear()
            self.events.append(f"renumbered to generation {self._generation}")
        self.drop_connections()

    def message_ids(self) -> list[str]:
        with self.lock:
            return [m.message_id for m in self.messages]

    # -- the connection's side

    def handle(self, h: socketserver.StreamRequestHandler) -> None:
        send = h.wfile.write
        if self.garbage_greeting:
            self.log("garbage")
            send(os.urandom(3000) + b"\r\n+OK\r\n" + os.urandom(500))
            return
        send(b"+OK fake POP3 ready\r\n")
        session: list[Pop3Message] | None = None
        deleted: set[int] = set()
        while True:
            line = h.rfile.readline(1 << 16)
            if not line:
                return
            command, _, args = line.decode("utf-8", "replace").strip().partition(" ")
            command = command.upper()
            if self.drop_now(command, "before"):
                return
            if command == "QUIT":
                if session is not None:
                    self._commit(session, deleted)
                if self.drop_now(command, "after"):
                    return
                send(b"+OK bye\r\n")
                return
            if command == "USER":
                answer = "+OK"
            elif command == "PASS":
                with self.lock:
                    session = list(self.messages)
                answer = "+OK logged in"
            elif session is None:
                answer = "-ERR log in first"
            else:
                answer = self._command(h, command, args, session, deleted)
                if answer is None:
                    return
            if self.drop_now(command, "after"):
                return
            if answer:
                send(answer.encode() + b"\r\n")

    def _command(self, h: socketserver.StreamRequestHandler, command: str, args: str, session: list[Pop3Message],
                 deleted: set[int]) -> str | None:
        """The one-line answer; a multi-line one is written here (then ""); None: close the connection."""
        send = h.wfile.write
        live = [(n, m) for n, m in enumerate(session, 1) if n not in deleted]
        if command == "STAT":
            return f"+OK {len(live)} {sum(len(m.raw) for _, m in live)}"
        if command in ("LIST", "UIDL"):
            if args:
                return "-ERR one at a time is not served here"
            lines = [f"{n} {self.announce.get(m.uidl, len(m.raw))}" if command == "LIST" else f"{n} {self._uidl(n, m)}"
                     for n, m in live]
            send(("+OK\r\n" + "".join(f"{line}\r\n" for line in lines) + ".\r\n").encode())
            return ""
        if command in ("RETR", "TOP", "DELE"):
            parts = args.split()
            try:
                n = int(parts[0])
            except (IndexError, ValueError):
                return "-ERR which message?"
            if n in deleted or not 1 <= n <= len(session):
                return "-ERR no such message"
            m = session[n - 1]
            if command == "DELE":
                deleted.add(n)
                self.log(f"DELE {n} {m.message_id}")
                return f"+OK message {n} deleted"
            raw = m.raw
            if command == "TOP":
                lines = int(parts[1]) if len(parts) > 1 else 0
                head, sep, body = raw.partition(b"\r\n\r\n")
                if lines < body.count(b"\r\n"):
                    raw = head + sep + b"".join(line + b"\r\n" for line in body.split(b"\r\n")[:lines])
            self.log(f"{command} {n} {m.message_id} ({len(raw)} bytes)")
            send(b"+OK\r\n")
            stuffed = (b"." if raw.startswith(b".") else b"") + raw.replace(b"\r\n.", b"\r\n..")
            if not self.write_body(h, [stuffed]):
                return None
            send((b"" if stuffed.endswith(b"\r\n") else b"\r\n") + b".\r\n")
            return ""
        if command in ("NOOP", "RSET"):
            if command == "RSET":
                deleted.clear()
            return "+OK"
        return f"-ERR unknown command {command}"

    def _uidl(self, n: int, m: Pop3Message) -> str:
        return str(n) if self.reuse_uidls else m.uidl

    def _commit(self, session: list[Pop3Message], deleted: set[int]) -> None:
        gone = [session[n - 1] for n in sorted(deleted)]
        with self.lock:
            self.messages = [m for m in self.messages if all(m is not g for g in gone)]
            self.deleted += [g.message_id for g in gone]
        if gone:
            self.log(f"QUIT committed {len(gone)} deletions")
