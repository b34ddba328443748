"""POP3 backend (poplib, blocking; runs on the ``mail`` pool): UIDL cursor, mail left on the server.

- POP3 shows a snapshot per session, so each ``changes_blocking`` starts a new session (QUIT, login,
  UIDL); fetching and removing reuse that session.
- Cursor: the UIDLs already read, as ``"h1:"`` + base64 of their sorted 8-byte BLAKE2b digests. It keeps
  only UIDLs still on the server (those that left can never come back), so it stays bounded by the
  mailbox's size: about 11 characters per message.
- Fetching uses ``TOP n <all lines>`` rather than RETR: the same bytes, but Dovecot (and other servers
  that mark RETR'd mail seen for their IMAP side) leave the message unread; RETR if TOP is refused.
- Nothing is ever deleted (DELE) unless ``delete_after_tracking`` is set: then marking a message tracked
  deletes it. POP3 has no flags, so otherwise ``mark_tracked_blocking`` does nothing.
- ``remove_blocking`` (the forward mailbox's wrappers) deletes at once: DELE, then QUIT to commit it.
  When the router knows the message's Message-ID, the message under that UIDL is checked first (``TOP n
  0``): a server that reassigned its UIDLs (a migration) or reuses them must never make abook delete
  another message. A message not found under its UIDL is looked for by its Message-ID in the session.
- Lines longer than poplib's 2048-byte limit (real mail has them) are read whole.
- Bounded: a message whose LIST size is over the limit is not downloaded, a download is cut off at the
  limit, and every other answer has a byte budget too; ``abort`` cuts the connection from another
  thread (``_guard``). A message is collected in one buffer, not a list of lines.
"""

from __future__ import annotations

import base64
import hashlib
import io
import poplib
import socket
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any, Callable, Optional, TypeVar

from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import MailboxConfig
from abook.mailbox._net import credentials, login_refused, port_of, tls_context, unavailable, where
from abook.mailbox._guard import COMMAND_BYTES, Cutter, Guarded, Overspent
from abook.mailbox.errors import CursorInvalid, MailboxError, MessageGone, TooLarge, Unavailable
from abook.mailbox.interfaces import DEFAULT_LIMIT, HEAD_BYTES, Batch, IMailSource, MessageRef
from abook.mailbox.headers import header_text, normalise_message_id

T = TypeVar("T")
_PREFIX = "h1:"
_DIGEST = 8
#: "TOP n <this>" asks for every body line
_ALL_LINES = 2_000_000_000
#: longest line accepted from the server (poplib's own limit is 2048 bytes)
MAX_LINE = 1 << 20
#: what a message download may read besides the message (the status line, the dot-stuffing, the end)
SLACK = 64 * 1024


def _digest(uidl: str) -> bytes:
    return hashlib.blake2b(uidl.encode("utf-8", "surrogateescape"), digest_size=_DIGEST).digest()


def encode_cursor(digests: set[bytes]) -> str:
    return _PREFIX + base64.b64encode(b"".join(sorted(digests))).decode("ascii")


def decode_cursor(cursor: str) -> set[bytes]:
    try:
        if not cursor.startswith(_PREFIX):
            raise ValueError(cursor)
        raw = base64.b64decode(cursor[len(_PREFIX):], validate=True)
        if len(raw) % _DIGEST:
            raise ValueError(cursor)
    except ValueError:
        raise CursorInvalid(f"not a POP3 cursor: {cursor[:40]!r}") from None
    return {raw[i:i + _DIGEST] for i in range(0, len(raw), _DIGEST)}


class _Guarded(Guarded):
    """poplib with lines up to MAX_LINE (its own limit is 2048 bytes), a byte budget per command, and its
    socket handed to a Cutter as soon as it exists."""

    def _create_socket(self, timeout: Any) -> socket.socket:
        sock = poplib.POP3._create_socket(self, timeout)  # type: ignore[arg-type]
        context = self.context if isinstance(self, poplib.POP3_SSL) else None
        return self.guard_socket(sock, context, self.host)  # type: ignore[attr-defined]

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(min(MAX_LINE, self.budget.left) + 1)  # type: ignore[attr-defined]
        self.budget.spend(len(line))
        if len(line) > MAX_LINE:
            raise poplib.error_proto("line too long")
        if not line:  # a connection failure, not an -ERR answer: never taken for "no such message"
            raise ConnectionResetError("the server closed the connection")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_Guarded, poplib.POP3):
    pass


class _POP3_SSL(_Guarded, poplib.POP3_SSL):
    pass


@implementer(IMailSource)
class Pop3Source:
    log = Logger()

    def __init__(self, config: MailboxConfig) -> None:
        self._config = config
        self._conn: Optional[poplib.POP3] = None
        self._numbers: dict[str, int] = {}  # UIDL -> message number in the current session
        self._peek = True  # read with TOP until the server refuses it
        self._cutter = Cutter()

    def __repr__(self) -> str:
        return f"<Pop3Source {self._config.name} {where(self._config)}>"

    # -- IMailSource

    def changes_blocking(self, cursor: Optional[str], limit: int) -> Batch:
        seen = decode_cursor(cursor) if cursor is not None else set()
        self.close_blocking()  # a new session: POP3 shows mail that arrived since only to a new one
        conn = self._session()
        sizes = {}
        for line in self._call(conn.list)[1]:
            number, size = line.split()[:2]
            sizes[int(number)] = int(size)
        listing = sorted(self._numbers.items(), key=lambda item: item[1])
        digests = {uidl: _digest(uidl) for uidl, _ in listing}
        new = [(uidl, n) for uidl, n in listing if digests[uidl] not in seen]
        taken = new[:limit]
        kept = {d for d in digests.values() if d in seen} | {digests[uidl] for uidl, _ in taken}
        refs = tuple(MessageRef(uidl, sizes.get(n)) for uidl, n in taken)
        self.log.debug("{mailbox}: {count} new of {total}", mailbox=self._config.name, count=len(refs), total=len(listing))
        return Batch(refs, encode_cursor(kept), more=len(new) > limit)

    def fetch_blocking(self, ref: MessageRef, limit: int = DEFAULT_LIMIT) -> bytes:
        conn, number = self._number_of(ref)
        if ref.size is not None and ref.size > limit:
            raise TooLarge(f"{self._config.name}: UIDL {ref.external_id}: the server announced {ref.size} bytes",
                           ref.size, self._head_of(ref), announced=True)
        try:
            # TOP with every body line gives the whole message, and servers such as Dovecot leave it unseen
            raw = self._call(lambda: _message(conn, f"TOP {number} {_ALL_LINES}"), limit + SLACK) if self._peek \
                else None
            if raw is None:
                self._peek = False  # TOP is optional (RFC 1939): RETR from now on
                raw = self._call(lambda: _message(conn, f"RETR {number}"), limit + SLACK)
            if raw is None:
                raise MessageGone(f"{self._config.name}: UIDL {ref.external_id} could not be read: it is gone")
        except Overspent:  # the rest is unread: the session was dropped
            raise TooLarge(f"{self._config.name}: UIDL {ref.external_id}: the server sent more than {limit} bytes",
                           limit + 1, self._head_of(ref), announced=False) from None
        if len(raw) > limit:
            raise TooLarge(f"{self._config.name}: UIDL {ref.external_id}: the server sent {len(raw)} bytes",
                           len(raw), raw[:HEAD_BYTES], announced=False)
        return raw

    def mark_tracked_blocking(self, ref: MessageRef) -> MessageRef | None:
        """POP3 has no flags: nothing to set, unless ``delete_after_tracking`` asks to delete it."""
        if self._config.delete_after_tracking:
            return self.remove_blocking(ref)
        return None

    def remove_blocking(self, ref: MessageRef) -> MessageRef | None:
        try:
            conn, number = self._number_of(ref)
        except MessageGone:
            number = None
        moved = None
        if ref.message_id is not None and (number is None or self._message_id_at(number) != ref.message_id):
            found = self._find(ref.message_id)
            if found is None:
                return None  # no message has its Message-ID any more: already gone, the wanted outcome
            uidl, number = found
            moved = MessageRef(uidl, ref.size, ref.message_id)
            self.log.info("{mailbox}: UIDL {old} found again by its Message-ID as UIDL {uidl}",
                          mailbox=self._config.name, old=ref.external_id, uidl=uidl)
        elif number is None:
            return None  # already gone: the wanted outcome
        conn = self._session()
        self._call(lambda: conn.dele(number))
        self._call(conn.quit)  # the deletion takes effect on QUIT
        self._conn, self._numbers = None, {}
        self._cutter.detach()
        return moved

    def close_blocking(self) -> None:
        conn, self._conn, self._numbers = self._conn, None, {}
        try:
            if conn is not None:
                conn.budget.start()  # type: ignore[attr-defined]
                conn.quit()
        except (poplib.error_proto, OSError, Overspent) as e:
            self.log.debug("{mailbox}: QUIT failed: {error}", mailbox=self._config.name, error=str(e))
            conn.close()  # type: ignore[union-attr]
        finally:
            self._cutter.detach()
            self._cutter.reset()

    def abort(self) -> None:
        self._cutter.cut()

    # -- session

    def _session(self) -> poplib.POP3:
        if self._conn is not None:
            return self._conn
        c = self._config
        username, password = credentials(c)
        context = tls_context(c)
        try:
            if c.security == "tls":
                conn: poplib.POP3 = _POP3_SSL(c.host, port_of(c), context=context, timeout=c.timeout,
                                              cutter=self._cutter)
            else:
                conn = _POP3(c.host, port_of(c), timeout=c.timeout, cutter=self._cutter)
                if c.security == "starttls":
                    conn.stls(context=context)
                    self._cutter.attach(conn.sock)
        except OSError as e:
            raise unavailable(c, e) from None
        except (poplib.error_proto, Overspent) as e:
            raise Unavailable(f"{c.name}: {where(c)}: {_text(e)}") from None
        try:
            conn.user(username)
            conn.pass_(password)
        except OSError as e:
            conn.close()
            raise unavailable(c, e) from None
        except Overspent as e:
            conn.close()
            raise Unavailable(f"{c.name}: {where(c)}: {e}") from None
        except poplib.error_proto as e:
            conn.close()
            raise login_refused(c, _text(e), ("[SYS/TEMP]", "[IN-USE]")) from None
        self._conn = conn
        numbers = {}
        for line in self._call(conn.uidl)[1]:
            number, uidl = line.decode("utf-8", "surrogateescape").split()[:2]
            numbers[uidl] = int(number)
        self._numbers = numbers
        return conn

    def _number_of(self, ref: MessageRef) -> tuple[poplib.POP3, int]:
        fresh = self._conn is None
        conn = self._session()
        if ref.external_id not in self._numbers and not fresh:  # listed in an earlier session: look again
            self.close_blocking()
            conn = self._session()
        try:
            return conn, self._numbers[ref.external_id]
        except KeyError:
            raise MessageGone(f"{self._config.name}: UIDL {ref.external_id} is no longer on the server") from None

    def _message_id_at(self, number: int) -> str | None:
        """The normalised Message-ID of message ``number`` of this session (its header read with TOP n 0)."""
        head = self._head(number)
        value = BytesHeaderParser(policy=compat32).parsebytes(head).get("Message-ID", "")
        return normalise_message_id(header_text(value))

    def _find(self, message_id: str) -> tuple[str, int] | None:
        """(UIDL, number) of the message of this session whose Message-ID is ``message_id``."""
        self._session()
        for uidl, number in sorted(self._numbers.items(), key=lambda item: item[1]):
            if self._message_id_at(number) == message_id:
                return uidl, number
        return None

    def _head_of(self, ref: MessageRef) -> bytes:
        """The head of an over-size message, for the admin's list (empty if that fails too)."""
        try:
            return self._head(self._number_of(ref)[1])
        except MailboxError as e:
            self.log.info("{mailbox}: the head of UIDL {uidl} could not be read either: {error}",
                          mailbox=self._config.name, uidl=ref.external_id, error=str(e))
            return b""

    def _head(self, number: int) -> bytes:
        """The header section of message ``number`` (TOP n 0), at most HEAD_BYTES of it."""
        conn = self._session()
        try:
            return self._call(lambda: _message(conn, f"TOP {number} 0"), HEAD_BYTES + SLACK) or b""
        except Overspent:
            return b""  # a header section that long is not worth reading

    def _call(self, f: Callable[[], T], budget: int | None = None) -> T:
        """Run one command, reading at most ``budget`` bytes (given: an over-budget answer raises Overspent
        for the caller, after the session is dropped; else it is a MailboxError)."""
        conn = self._conn
        if isinstance(conn, _Guarded):
            conn.budget.start(budget or COMMAND_BYTES)
        try:
            return f()
        except OSError as e:
            self._lose_session()
            raise unavailable(self._config, e) from None
        except Overspent as e:
            self._lose_session()
            if budget is not None:
                raise
            raise MailboxError(f"{self._config.name}: {where(self._config)}: {e}") from None
        except poplib.error_proto as e:
            raise MailboxError(f"{self._config.name}: the server refused: {_text(e)}") from None

    def _lose_session(self) -> None:
        conn, self._conn, self._numbers = self._conn, None, {}
        self._cutter.detach()
        if conn is not None:
            conn.close()


def _message(conn: poplib.POP3, command: str) -> Optional[bytes]:
    """A multi-line answer (RETR, TOP) as one message, un-dot-stuffed, each line ended with CRLF; None when
    the server answers -ERR. One buffer grows with it: no list of lines, no second copy when it is done."""
    conn._putcmd(command)  # type: ignore[attr-defined]
    try:
        conn._getresp()  # type: ignore[attr-defined]
    except poplib.error_proto:
        return None
    out = io.BytesIO()
    while True:
        line, _ = conn._getline()  # type: ignore[attr-defined]
        if line == b".":
            return out.getvalue()
        out.write(line[1:] if line.startswith(b"..") else line)
        out.write(b"\r\n")


def _text(error: Exception) -> str:
    arg = error.args[0] if error.args else error
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
