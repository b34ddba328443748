"""IMAP backend (imaplib, blocking; runs on the ``mail`` pool): UIDVALIDITY + UID cursor, keyword mark.

- Cursor ``"<UIDVALIDITY>:<last UID read>"``; a different UIDVALIDITY raises CursorInvalid (the router
  re-reads the folder and tracking's duplicate detection keeps it idempotent).
- A message's ``external_id`` is ``"<UIDVALIDITY>:<UID>"`` too, so a later fetch or mark can never hit
  another message after the folder was rebuilt (bare UIDs are accepted as well).
- The folder is opened read-only (EXAMINE) and read with ``BODY.PEEK[]``, so ``\\Seen`` never changes;
  only marking (``UID STORE +FLAGS.SILENT ($CRMTracked)``) and removing select it read-write.
- TLS: implicit (``security = "tls"``, IMAP4_SSL), STARTTLS, or none (loopback tests only).
- A message's ``external_id`` from an earlier UIDVALIDITY (a mark that failed, then the folder was
  rebuilt) is found again by its Message-ID (``UID SEARCH HEADER``, each hit's Message-ID compared) when
  it is marked or removed; ``MessageGone`` when no message has it any more.
- Bounded: a message over the limit is not downloaded when its RFC822.SIZE says so, and no command may
  read more than its budget (a literal over it is refused before it is read, and the connection dropped),
  so the server never decides how much memory abook allocates. ``abort`` cuts the connection from
  another thread (``_guard.Cutter``).
- One source serves one poller: its methods are called one at a time, from any one pool thread.
"""

from __future__ import annotations

import base64
import imaplib
import re
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Callable, Optional

from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import MailboxConfig
from abook.mailbox._net import credentials, login_refused, port_of, tls_context, unavailable, where
from abook.mailbox._guard import COMMAND_BYTES, Cutter, Guarded, Overspent
from abook.mailbox._imaplib import IMAP4, IMAP4_SSL, drop, literal
from abook.mailbox.errors import CursorInvalid, MailboxError, MailboxMissing, MessageGone, TooLarge, Unavailable
from abook.mailbox.interfaces import DEFAULT_LIMIT, HEAD_BYTES, Batch, IMailSource, MessageRef
from abook.mailbox.headers import header_text, normalise_message_id

_SIZE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")
_UID = re.compile(rb"UID (\d+)")
#: what a FETCH response may carry besides the message itself (its lines, flags, untagged noise)
SLACK = 64 * 1024
#: Message-ID search hits whose header is read to compare it (a substring search may match others)
MAX_CANDIDATES = 50


def _quote(folder: str) -> str:
    name = encode_folder(folder)
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_folder(name: str) -> str:
    """A folder name in IMAP's modified UTF-7 (RFC 3501 5.1.3), e.g. "Entwürfe" -> "Entw&APw-rfe"."""
    out, pending = [], ""

    def flush() -> None:
        nonlocal pending
        if pending:
            b64 = base64.b64encode(pending.encode("utf-16-be")).decode("ascii").rstrip("=")
            out.append("&" + b64.replace("/", ",") + "-")
            pending = ""

    for ch in name:
        if 0x20 <= ord(ch) <= 0x7E:
            flush()
            out.append("&-" if ch == "&" else ch)
        else:
            pending += ch
    flush()
    return "".join(out)


def _text(data: object) -> str:
    if isinstance(data, list):
        data = b" ".join(d for d in data if isinstance(d, bytes))
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    return str(data)


def parse_cursor(cursor: str) -> tuple[int, int]:
    try:
        validity, last = cursor.split(":")
        return int(validity), int(last)
    except ValueError:
        raise CursorInvalid(f"not an IMAP cursor (UIDVALIDITY:UID): {cursor!r}") from None


@implementer(IMailSource)
class ImapSource:
    log = Logger()

    def __init__(self, config: MailboxConfig) -> None:
        self._config = config
        self._conn: Optional[imaplib.IMAP4] = None
        self._selected: Optional[str] = None  # "ro" or "rw"
        self._uidvalidity = 0
        self._permanent_flags = b""
        self._cutter = Cutter()

    def __repr__(self) -> str:
        return f"<ImapSource {self._config.name} {where(self._config)}>"

    # -- IMailSource

    def changes_blocking(self, cursor: Optional[str], limit: int) -> Batch:
        conn = self._select("ro", refresh=True)
        last = 0
        if cursor is not None:
            validity, last = parse_cursor(cursor)
            if validity != self._uidvalidity:
                raise CursorInvalid(
                    f"{self._config.name}: UIDVALIDITY of {self._config.folder} changed from {validity} to "
                    f"{self._uidvalidity}: the folder must be read again"
                )
        # "n:*" also matches the highest UID when nothing is newer than n, so filter on > last.
        data = self._uid_cmd(conn, "SEARCH", "UID", f"{last + 1}:*")
        uids = sorted(u for u in (int(x) for x in b" ".join(d for d in data if d).split()) if u > last)
        taken = uids[:limit]
        sizes = self._sizes(conn, taken)
        refs = tuple(MessageRef(f"{self._uidvalidity}:{uid}", sizes.get(uid)) for uid in taken)
        new_last = taken[-1] if taken else last
        self.log.debug("{mailbox}: {count} new since UID {last}", mailbox=self._config.name, count=len(refs), last=last)
        return Batch(refs, f"{self._uidvalidity}:{new_last}", more=len(uids) > limit)

    def fetch_blocking(self, ref: MessageRef, limit: int = DEFAULT_LIMIT) -> bytes:
        conn = self._select(self._selected or "ro")
        uid = self._uid_of(ref)
        if ref.size is not None and ref.size > limit:
            raise self._too_large(uid, ref.size, limit, announced=True)
        try:
            data = self._uid_cmd(conn, "FETCH", str(uid), "(BODY.PEEK[])", budget=limit + SLACK)
        except Overspent as e:  # the literal announced more: refused unread, the connection dropped
            raise self._too_large(uid, e.wanted, limit, announced=False) from None
        body = literal(data, b"BODY[]")
        if body is None:
            raise MessageGone(f"{self._config.name}: UID {uid} is no longer in {self._config.folder}")
        if len(body) > limit:
            raise self._too_large(uid, len(body), limit, announced=False, head=body[:HEAD_BYTES])
        return body

    def mark_tracked_blocking(self, ref: MessageRef) -> MessageRef | None:
        conn = self._select("rw")
        keyword = self._config.tracked_keyword
        if b"\\*" not in self._permanent_flags and keyword.encode() not in self._permanent_flags:
            raise MailboxError(f"{self._config.name}: the server does not keep keywords in {self._config.folder}")
        uids, moved = self._locate(conn, ref)
        self._uid_cmd(conn, "STORE", ",".join(map(str, uids)), "+FLAGS.SILENT", f"({keyword})")
        return moved

    def remove_blocking(self, ref: MessageRef) -> MessageRef | None:
        conn = self._select("rw")
        found, moved = self._locate(conn, ref)
        uids = ",".join(map(str, found))
        self._uid_cmd(conn, "STORE", uids, "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in conn.capabilities:
            self._uid_cmd(conn, "EXPUNGE", uids)
        else:  # without UIDPLUS, EXPUNGE also removes what others flagged \Deleted: that is their intent too
            self._ok(self._call(conn.expunge), "EXPUNGE")
        return moved

    def close_blocking(self) -> None:
        conn, self._conn, self._selected = self._conn, None, None
        try:
            if conn is not None:
                conn.logout()
        except (imaplib.IMAP4.error, OSError, Overspent) as e:
            self.log.debug("{mailbox}: logout failed: {error}", mailbox=self._config.name, error=str(e))
        finally:
            self._cutter.detach()
            self._cutter.reset()

    def abort(self) -> None:
        self._cutter.cut()

    # -- connection

    def _connect(self) -> imaplib.IMAP4:
        c = self._config
        username, password = credentials(c)
        context = tls_context(c)
        try:
            if c.security == "tls":
                conn: imaplib.IMAP4 = IMAP4_SSL(c.host, port_of(c), ssl_context=context, timeout=c.timeout,
                                                 cutter=self._cutter)
            else:
                conn = IMAP4(c.host, port_of(c), timeout=c.timeout, cutter=self._cutter)
                if c.security == "starttls":
                    conn.starttls(ssl_context=context)
                    self._cutter.attach(conn.sock)
        except (OSError, imaplib.IMAP4.abort) as e:
            raise unavailable(c, e) from None
        except Overspent as e:
            raise Unavailable(f"{c.name}: {where(c)}: {e}") from None
        except imaplib.IMAP4.error as e:  # STARTTLS refused
            raise Unavailable(f"{c.name}: {where(c)}: {_text(e.args[0] if e.args else e)}") from None
        try:
            if (username + password).isascii():
                conn.login(username, password)
            else:  # LOGIN is ASCII-only in imaplib; SASL PLAIN carries UTF-8
                plain = f"\0{username}\0{password}".encode("utf-8")
                conn.authenticate("PLAIN", lambda _challenge: plain)
        except imaplib.IMAP4.abort as e:
            raise unavailable(c, e) from None
        except imaplib.IMAP4.error as e:
            drop(conn)
            raise login_refused(c, _text(e.args[0] if e.args else e), ("[UNAVAILABLE]", "[INUSE]")) from None
        except OSError as e:
            raise unavailable(c, e) from None
        self.log.debug("{mailbox}: logged in to {server}", mailbox=c.name, server=where(c))
        return conn

    def _select(self, mode: str, refresh: bool = False) -> imaplib.IMAP4:
        """The connection with the folder selected read-only ("ro") or read-write ("rw").

        A kept connection the server has dropped meanwhile (idle logout, restart) is opened anew, once.
        """
        reused = self._conn is not None
        try:
            return self._select_once(mode, refresh)
        except Unavailable:
            if not reused or self._cutter.is_cut:
                raise
            self.log.info("{mailbox}: connection lost, logging in again", mailbox=self._config.name)
            return self._select_once(mode, refresh)

    def _select_once(self, mode: str, refresh: bool) -> imaplib.IMAP4:
        if self._conn is None:
            self._conn = self._connect()
            self._selected = None
        if self._selected == mode and not refresh:
            return self._conn
        conn = self._conn
        typ, data = self._call(lambda: conn.select(_quote(self._config.folder), readonly=(mode == "ro")))
        if typ != "OK":
            self._selected = None
            reason = _text(data)
            if "[NONEXISTENT]" in reason or "doesn't exist" in reason.lower():
                raise MailboxMissing(f"{self._config.name}: no folder {self._config.folder!r}: {reason}")
            raise MailboxError(f"{self._config.name}: cannot open {self._config.folder!r}: {reason}")
        validity = conn.response("UIDVALIDITY")[1]
        if not validity or validity[0] is None:
            raise MailboxError(f"{self._config.name}: the server sent no UIDVALIDITY for {self._config.folder!r}")
        self._uidvalidity = int(_text(validity).split()[0])
        self._permanent_flags = b" ".join(d for d in conn.response("PERMANENTFLAGS")[1] if d)
        self._selected = mode
        return conn

    def _uid_of(self, ref: MessageRef) -> int:
        if ":" not in ref.external_id:
            return int(ref.external_id)
        validity, uid = parse_cursor(ref.external_id)
        if validity != self._uidvalidity:
            raise CursorInvalid(f"{self._config.name}: {ref.external_id} is from an earlier UIDVALIDITY")
        return uid

    def _locate(self, conn: imaplib.IMAP4, ref: MessageRef) -> tuple[list[int], MessageRef | None]:
        """The UIDs to mark or remove for ``ref``, and the ref it was found under when that changed."""
        if ":" not in ref.external_id:
            return [int(ref.external_id)], None
        validity, uid = parse_cursor(ref.external_id)
        if validity == self._uidvalidity:
            return [uid], None
        name, folder = self._config.name, self._config.folder
        if not ref.message_id:
            raise MessageGone(f"{name}: {ref.external_id} is from an earlier UIDVALIDITY of {folder} "
                              f"(now {self._uidvalidity}) and has no Message-ID to find it by")
        uids = self._with_message_id(conn, ref.message_id)
        if not uids:
            raise MessageGone(f"{name}: {ref.external_id} is from an earlier UIDVALIDITY of {folder} "
                              f"(now {self._uidvalidity}) and no message in it has its Message-ID")
        self.log.info("{mailbox}: {old} found again by its Message-ID as UID {uid}", mailbox=name,
                      old=ref.external_id, uid=uids[0])
        return uids, MessageRef(f"{self._uidvalidity}:{uids[0]}", ref.size, ref.message_id)

    def _with_message_id(self, conn: imaplib.IMAP4, message_id: str) -> list[int]:
        """UIDs of the messages whose Message-ID, normalised, is ``message_id``."""
        if not message_id.isascii():
            return []  # SEARCH without CHARSET is ASCII; such an id is not worth a literal
        quoted = '"' + message_id.replace("\\", "\\\\").replace('"', '\\"') + '"'
        data = self._uid_cmd(conn, "SEARCH", "HEADER", "Message-ID", quoted)
        hits = sorted(int(x) for x in b" ".join(d for d in data if isinstance(d, bytes)).split())[:MAX_CANDIDATES]
        if not hits:
            return []
        data = self._uid_cmd(conn, "FETCH", ",".join(map(str, hits)), "(UID BODY.PEEK[HEADER.FIELDS (MESSAGE-ID)])")
        found = []
        for i, part in enumerate(data):
            if not isinstance(part, tuple):
                continue
            m = _UID.search(part[0])
            if m is None and i + 1 < len(data) and isinstance(data[i + 1], bytes):
                m = _UID.search(data[i + 1])  # the UID item after the literal
            head = BytesHeaderParser(policy=compat32).parsebytes(part[1])
            if m and normalise_message_id(header_text(head.get("Message-ID", ""))) == message_id:
                found.append(int(m.group(1)))
        return sorted(set(found))

    def _too_large(self, uid: int, size: int | None, limit: int, announced: bool, head: bytes | None = None
                   ) -> TooLarge:
        if head is None:
            head = self._head(uid)
        how = "announced" if announced else "sent"
        return TooLarge(f"{self._config.name}: UID {uid}: the server {how} "
                        f"{size if size is not None else 'more than ' + str(limit)} bytes", size or limit + 1,
                        head, announced=announced)

    def _head(self, uid: int) -> bytes:
        """The first bytes of an over-size message, for the admin's list (empty if that fails too)."""
        try:
            conn = self._select(self._selected or "ro")
            data = self._uid_cmd(conn, "FETCH", str(uid), f"(BODY.PEEK[]<0.{HEAD_BYTES}>)", budget=HEAD_BYTES + SLACK)
        except (MailboxError, Overspent) as e:
            self.log.info("{mailbox}: the head of UID {uid} could not be read either: {error}",
                          mailbox=self._config.name, uid=uid, error=str(e))
            return b""
        return (literal(data, b"BODY[]") or b"")[:HEAD_BYTES]

    def _sizes(self, conn: imaplib.IMAP4, uids: list[int]) -> dict[int, int]:
        if not uids:
            return {}
        data = self._uid_cmd(conn, "FETCH", ",".join(map(str, uids)), "(RFC822.SIZE)")
        sizes: dict[int, int] = {}
        for line in data:
            m = _SIZE.search(line if isinstance(line, bytes) else line[0]) if line else None
            if m:
                uid, size = (m.group(1), m.group(2)) if m.group(1) else (m.group(4), m.group(3))
                sizes[int(uid)] = int(size)
        return sizes

    def _uid_cmd(self, conn: imaplib.IMAP4, command: str, *args: str, budget: int | None = None) -> list:
        return self._ok(self._call(lambda: conn.uid(command, *args), budget), "UID " + command)

    def _call(self, f: Callable[[], tuple[str, list]], budget: int | None = None) -> tuple[str, list]:
        """Run one command on the connection, reading at most ``budget`` bytes (given: an over-budget
        answer raises Overspent for the caller; else it is a MailboxError)."""
        conn = self._conn
        if isinstance(conn, Guarded):
            conn.budget.start(budget or COMMAND_BYTES)
        try:
            return f()
        except Overspent as e:
            self._lose_connection()
            if budget is not None:
                raise
            raise MailboxError(f"{self._config.name}: {where(self._config)}: {e}") from None
        except (imaplib.IMAP4.abort, OSError) as e:
            self._lose_connection()
            raise unavailable(self._config, e) from None
        except imaplib.IMAP4.error as e:
            raise MailboxError(f"{self._config.name}: the server rejected a command: {_text(e.args[0])}") from None

    def _ok(self, result: tuple[str, list], what: str) -> list:
        typ, data = result
        if typ != "OK":
            raise MailboxError(f"{self._config.name}: {what} failed: {_text(data)}")
        return data


    def _lose_connection(self) -> None:
        drop(self._conn)
        self._conn, self._selected = None, None
        self._cutter.detach()
