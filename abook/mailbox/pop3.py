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
- Lines longer than poplib's 2048-byte limit (real mail has them) are read whole.
"""

from __future__ import annotations

import base64
import hashlib
import poplib
from typing import Callable, Optional, TypeVar

from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import MailboxConfig
from abook.mailbox._net import credentials, login_refused, port_of, tls_context, unavailable, where
from abook.mailbox.errors import CursorInvalid, MailboxError, MessageGone, Unavailable
from abook.mailbox.interfaces import Batch, IMailSource, MessageRef

T = TypeVar("T")
_PREFIX = "h1:"
_DIGEST = 8
#: "TOP n <this>" asks for every body line
_ALL_LINES = 2_000_000_000
#: longest line accepted from the server (poplib's own limit is 2048 bytes)
MAX_LINE = 1 << 20


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


class _LongLines:
    """poplib reads at most 2048 bytes a line; read up to MAX_LINE instead."""

    def _getline(self) -> tuple[bytes, int]:
        line = self.file.readline(MAX_LINE + 1)  # type: ignore[attr-defined]
        if len(line) > MAX_LINE:
            raise poplib.error_proto("line too long")
        if not line:
            raise poplib.error_proto("-ERR EOF")
        octets = len(line)
        if line[-2:] == b"\r\n":
            return line[:-2], octets
        if line[:1] == b"\r":
            return line[1:-1], octets
        return line[:-1], octets


class _POP3(_LongLines, poplib.POP3):
    pass


class _POP3_SSL(_LongLines, poplib.POP3_SSL):
    pass


@implementer(IMailSource)
class Pop3Source:
    log = Logger()

    def __init__(self, config: MailboxConfig) -> None:
        self._config = config
        self._conn: Optional[poplib.POP3] = None
        self._numbers: dict[str, int] = {}  # UIDL -> message number in the current session
        self._peek = True  # read with TOP until the server refuses it

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

    def fetch_blocking(self, ref: MessageRef) -> bytes:
        conn, number = self._number_of(ref)
        # TOP with every body line gives the whole message, and servers such as Dovecot leave it unseen
        lines = self._call(lambda: _top(conn, number)) if self._peek else None
        if lines is None:
            self._peek = False  # TOP is optional (RFC 1939): RETR from now on
            lines = self._call(lambda: conn.retr(number))[1]
        return b"".join(line + b"\r\n" for line in lines)

    def mark_tracked_blocking(self, ref: MessageRef) -> None:
        """POP3 has no flags: nothing to set, unless ``delete_after_tracking`` asks to delete it."""
        if self._config.delete_after_tracking:
            self.remove_blocking(ref)

    def remove_blocking(self, ref: MessageRef) -> None:
        try:
            conn, number = self._number_of(ref)
        except MessageGone:
            return  # already gone: the wanted outcome
        self._call(lambda: conn.dele(number))
        self._call(conn.quit)  # the deletion takes effect on QUIT
        self._conn, self._numbers = None, {}

    def close_blocking(self) -> None:
        conn, self._conn, self._numbers = self._conn, None, {}
        if conn is None:
            return
        try:
            conn.quit()
        except (poplib.error_proto, OSError) as e:
            self.log.debug("{mailbox}: QUIT failed: {error}", mailbox=self._config.name, error=str(e))
            conn.close()

    # -- session

    def _session(self) -> poplib.POP3:
        if self._conn is not None:
            return self._conn
        c = self._config
        username, password = credentials(c)
        context = tls_context(c)
        try:
            if c.security == "tls":
                conn: poplib.POP3 = _POP3_SSL(c.host, port_of(c), context=context, timeout=c.timeout)
            else:
                conn = _POP3(c.host, port_of(c), timeout=c.timeout)
                if c.security == "starttls":
                    conn.stls(context=context)
        except OSError as e:
            raise unavailable(c, e) from None
        except poplib.error_proto as e:
            raise Unavailable(f"{c.name}: {where(c)}: {_text(e)}") from None
        try:
            conn.user(username)
            conn.pass_(password)
        except OSError as e:
            conn.close()
            raise unavailable(c, e) from None
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

    def _call(self, f: Callable[[], T]) -> T:
        try:
            return f()
        except OSError as e:
            conn, self._conn, self._numbers = self._conn, None, {}
            if conn is not None:
                conn.close()
            raise unavailable(self._config, e) from None
        except poplib.error_proto as e:
            raise MailboxError(f"{self._config.name}: the server refused: {_text(e)}") from None


def _top(conn: poplib.POP3, number: int) -> Optional[list[bytes]]:
    """The whole message by TOP, or None when the server refuses TOP."""
    try:
        return conn.top(number, _ALL_LINES)[1]
    except poplib.error_proto:
        return None


def _text(error: poplib.error_proto) -> str:
    arg = error.args[0] if error.args else error
    return arg.decode("utf-8", "replace") if isinstance(arg, bytes) else str(arg)
