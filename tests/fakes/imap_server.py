"""A small IMAP4rev1 server with one folder, for fault tests (real sockets on 127.0.0.1, see fault_server).

It serves what ``ImapSource`` sends: CAPABILITY, LOGIN, SELECT/EXAMINE (UIDVALIDITY, UIDNEXT,
PERMANENTFLAGS), UID SEARCH (a UID range; HEADER Message-ID), UID FETCH (RFC822.SIZE, FLAGS, BODY.PEEK[],
a partial BODY.PEEK[]<0.n>, BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)]), UID STORE, UID EXPUNGE, EXPUNGE, NOOP,
LOGOUT. The test changes the folder under the client (``deliver``, ``expunge``, ``bump_validity``, which
renumbers every message as a rebuilt folder does, keeping its flags) and breaks things on purpose (the
base's drops, trickle and hang; ``garbage_select``; ``announce`` to lie about sizes;
``bump_every_select``).
"""

from __future__ import annotations

import os
import re
import socketserver
from dataclasses import dataclass, field

from tests.fakes.fault_server import CHUNK, FaultServer, message_id_of

_LITERAL = re.compile(rb"\{(\d+)\}\r\n$")
_PARTIAL = re.compile(r"BODY\.PEEK\[\]<(\d+)\.(\d+)>")
_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|\S+')


@dataclass
class ImapMessage:
    uid: int
    raw: bytes
    flags: set[str] = field(default_factory=set)

    @property
    def message_id(self) -> str:
        return message_id_of(self.raw)


class FakeImapServer(FaultServer):
    def __init__(self) -> None:
        super().__init__()
        self.validity = 1000
        self.uidnext = 1
        self.messages: list[ImapMessage] = []
        #: uid -> the RFC822.SIZE to announce instead of the real size
        self.announce: dict[int, int] = {}
        self.garbage_select = False
        self.bump_every_select = False
        #: the folder keeps keywords (PERMANENTFLAGS has \*)
        self.keywords = True

    # -- the test's side

    def deliver(self, raw: bytes) -> int:
        with self.lock:
            uid = self.uidnext
            self.uidnext += 1
            self.messages.append(ImapMessage(uid, raw))
            return uid

    def expunge(self, uid: int) -> None:
        """Another client removes a message."""
        with self.lock:
            self.messages = [m for m in self.messages if m.uid != uid]

    def bump_validity(self) -> None:
        """The folder is rebuilt: a new UIDVALIDITY, every message a new UID, flags kept; clients are
        disconnected (a server changes UIDVALIDITY only for a folder nobody has selected)."""
        with self.lock:
            self.validity += 1
            for n, m in enumerate(self.messages, 1):
                m.uid = n
            self.uidnext = len(self.messages) + 1
            self.announce.clear()
            self.events.append(f"validity {self.validity}")
        self.drop_connections()

    def _highest(self) -> int:
        with self.lock:
            return max((m.uid for m in self.messages), default=0)

    def flags(self) -> dict[str, set[str]]:
        """Message-ID -> flags of every message in the folder."""
        with self.lock:
            return {m.message_id: set(m.flags) for m in self.messages}

    def uid_of(self, message_id: str) -> int:
        with self.lock:
            return next(m.uid for m in self.messages if m.message_id == message_id)

    # -- the connection's side

    def handle(self, h: socketserver.StreamRequestHandler) -> None:
        send = h.wfile.write
        send(b"* OK [CAPABILITY IMAP4rev1 UIDPLUS] fake ready\r\n")
        while True:
            line = h.rfile.readline(1 << 20)
            if not line:
                return
            while (m := _LITERAL.search(line)) is not None:  # a client literal: ask for it, read it
                send(b"+ go ahead\r\n")
                line = line[:m.start()] + b'"' + h.rfile.read(int(m.group(1))) + b'"' + h.rfile.readline(1 << 20)
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            tag, _, rest = text.partition(" ")
            command, _, args = rest.partition(" ")
            command = command.upper()
            if command == "UID":
                sub, _, args = args.partition(" ")
                command = "UID " + sub.upper()
            name = command.split()[-1]
            if self.drop_now(name, "before"):
                return
            if command == "LOGOUT":
                send(f"* BYE bye\r\n{tag} OK done\r\n".encode())
                return
            done = self._command(h, command, args)
            if done is None:
                return
            if self.drop_now(name, "after"):
                return
            send(f"{tag} {done}\r\n".encode())

    def _command(self, h: socketserver.StreamRequestHandler, command: str, args: str) -> str | None:
        """Answer one command's untagged part; the tagged status to send, or None to close."""
        send = h.wfile.write
        if command == "CAPABILITY":
            send(b"* CAPABILITY IMAP4rev1 UIDPLUS\r\n")
        elif command in ("LOGIN", "NOOP", "CLOSE"):
            pass
        elif command in ("SELECT", "EXAMINE"):
            return self._select(h, command)
        elif command == "UID SEARCH":
            send(("* SEARCH " + " ".join(map(str, self._search(args))) + "\r\n").encode())
        elif command == "UID FETCH":
            uids_text, _, items = args.partition(" ")
            with self.lock:
                wanted = [m for m in self.messages if _in_set(m.uid, uids_text, self._highest())]
            for m in wanted:
                if not self._fetch(h, m, items.upper()):
                    return None
        elif command == "UID STORE":
            uids_text, _, rest = args.partition(" ")
            flags = rest[rest.index("(") + 1:rest.rindex(")")].split()
            with self.lock:
                for m in self.messages:
                    if _in_set(m.uid, uids_text, self._highest()):
                        m.flags.update(flags)
            self.log(f"STORE {uids_text} {' '.join(flags)}")
        elif command in ("UID EXPUNGE", "EXPUNGE"):
            with self.lock:
                gone = [m for m in self.messages if "\\Deleted" in m.flags
                        and (command == "EXPUNGE" or _in_set(m.uid, args, self._highest()))]
                self.messages = [m for m in self.messages if m not in gone]
            self.log(f"EXPUNGE {','.join(str(m.uid) for m in gone)}")
        else:
            return f"BAD unknown command {command}"
        return "OK done"

    def _select(self, h: socketserver.StreamRequestHandler, command: str) -> str | None:
        if self.garbage_select:
            self.log("garbage")
            h.wfile.write(os.urandom(3000) + b"\r\n* OK [UIDVALIDITY zz9]\r\n" + os.urandom(500))
            return None
        with self.lock:
            if self.bump_every_select:
                self.validity += 1
                for n, m in enumerate(self.messages, 1):
                    m.uid = n
                self.uidnext = len(self.messages) + 1
            exists, validity, uidnext = len(self.messages), self.validity, self.uidnext
        permanent = "\\Seen \\Deleted \\*" if self.keywords else "\\Seen \\Deleted"
        h.wfile.write((f"* {exists} EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY {validity}] v\r\n"
                       f"* OK [UIDNEXT {uidnext}] n\r\n* FLAGS (\\Seen \\Deleted)\r\n"
                       f"* OK [PERMANENTFLAGS ({permanent})] f\r\n").encode())
        return "OK [READ-ONLY] done" if command == "EXAMINE" else "OK [READ-WRITE] done"

    def _search(self, args: str) -> list[int]:
        tokens = _TOKEN.findall(args)
        with self.lock:
            if len(tokens) >= 3 and tokens[0].upper() == "HEADER":
                needle = tokens[2].strip('"').replace('\\"', '"').replace("\\\\", "\\").lower()
                field_name = tokens[1].lower().encode()
                return [m.uid for m in self.messages if needle in _header(m.raw, field_name).lower()]
            if len(tokens) == 2 and tokens[0].upper() == "UID":
                return [m.uid for m in self.messages if _in_set(m.uid, tokens[1], self._highest())]
            return [m.uid for m in self.messages]

    def _fetch(self, h: socketserver.StreamRequestHandler, m: ImapMessage, items: str) -> bool:
        send = h.wfile.write
        with self.lock:
            seq = self.messages.index(m) + 1 if m in self.messages else 1
        if "RFC822.SIZE" in items:
            size = self.announce.get(m.uid, len(m.raw))
            send(f"* {seq} FETCH (UID {m.uid} RFC822.SIZE {size})\r\n".encode())
        elif "HEADER.FIELDS" in items:
            value = _header(m.raw, b"message-id")
            data = f"Message-ID: {value}\r\n\r\n".encode() if value else b"\r\n"
            send(f"* {seq} FETCH (UID {m.uid} BODY[HEADER.FIELDS (MESSAGE-ID)] {{{len(data)}}}\r\n".encode() + data
                 + b")\r\n")
        elif (p := _PARTIAL.search(items)) is not None:
            start, length = int(p.group(1)), int(p.group(2))
            data = m.raw[start:start + length]
            send(f"* {seq} FETCH (UID {m.uid} BODY[]<{start}> {{{len(data)}}}\r\n".encode() + data + b")\r\n")
        elif "BODY" in items or "RFC822" in items:
            self.log(f"FETCH body uid {m.uid} ({len(m.raw)} bytes)")
            send(f"* {seq} FETCH (UID {m.uid} BODY[] {{{len(m.raw)}}}\r\n".encode())
            if not self.write_body(h, [m.raw]):
                return False
            send(b")\r\n")
        elif "FLAGS" in items:
            send(f"* {seq} FETCH (UID {m.uid} FLAGS ({' '.join(sorted(m.flags))}))\r\n".encode())
        return True


def _in_set(uid: int, text: str, highest: int) -> bool:
    """Whether ``uid`` is in an IMAP sequence set such as ``1,4:6,9:*``."""
    for part in text.split(","):
        lo, _, hi = part.partition(":")
        low = highest if lo == "*" else int(lo)
        high = low if not hi else (highest if hi == "*" else int(hi))
        if min(low, high) <= uid <= max(low, high):
            return True
    return False


def _header(raw: bytes, name: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0][:CHUNK]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(name + b":"):
            return line.split(b":", 1)[1].strip().decode("utf-8", "replace")
    return ""
