"""IMAP backend (imaplib, blocking; runs on the ``mail`` pool): UIDVALIDITY + UID cursor, keyword mark.

- Cursor ``"<UIDVALIDITY>:<last UID read>"``; a different UIDVALIDITY raises CursorInvalid (the router
  re-reads the folder and tracking's duplicate detection keeps it idempotent).
- A message's ``external_id`` is ``"<UIDVALIDITY>:<UID>"`` too, so a later fetch or mark can never hit
  another message after the folder was rebuilt (bare UIDs are accepted as well).
- The folder is opened read-only (EXAMINE) and read with ``BODY.PEEK[]``, so ``\\Seen`` never changes;
  only marking (``UID STORE +FLAGS.SILENT ($CRMTracked)``) and removing select it read-write.
- TLS: implicit (``security = "tls"``, IMAP4_SSL), STARTTLS, or none (loopback tests only).
- One source serves one poller: its methods are called one at a time, from any one pool thread.
"""

from __future__ import annotations

import base64
import imaplib
import re
from typing import Callable, Optional

from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import MailboxConfig
from abook.mailbox._net import credentials, login_refused, port_of, tls_context, unavailable, where
from abook.mailbox.errors import CursorInvalid, MailboxError, MailboxMissing, MessageGone, Unavailable
from abook.mailbox.interfaces import Batch, IMailSource, MessageRef

_SIZE = re.compile(rb"UID (\d+) RFC822\.SIZE (\d+)|RFC822\.SIZE (\d+) UID (\d+)")


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

    def fetch_blocking(self, ref: MessageRef) -> bytes:
        conn = self._select(self._selected or "ro")
        uid = self._uid_of(ref)
        data = self._uid_cmd(conn, "FETCH", str(uid), "(BODY.PEEK[])")
        for part in data:
            if isinstance(part, tuple) and b"BODY[]" in part[0]:
                return part[1]
        raise MessageGone(f"{self._config.name}: UID {uid} is no longer in {self._config.folder}")

    def mark_tracked_blocking(self, ref: MessageRef) -> None:
        conn = self._select("rw")
        uid = self._uid_of(ref)
        keyword = self._config.tracked_keyword
        if b"\\*" not in self._permanent_flags and keyword.encode() not in self._permanent_flags:
            raise MailboxError(f"{self._config.name}: the server does not keep keywords in {self._config.folder}")
        self._uid_cmd(conn, "STORE", str(uid), "+FLAGS.SILENT", f"({keyword})")

    def remove_blocking(self, ref: MessageRef) -> None:
        conn = self._select("rw")
        uid = str(self._uid_of(ref))
        self._uid_cmd(conn, "STORE", uid, "+FLAGS.SILENT", "(\\Deleted)")
        if "UIDPLUS" in conn.capabilities:
            self._uid_cmd(conn, "EXPUNGE", uid)
        else:  # without UIDPLUS, EXPUNGE also removes what others flagged \Deleted: that is their intent too
            self._ok(self._call(conn.expunge), "EXPUNGE")

    def close_blocking(self) -> None:
        conn, self._conn, self._selected = self._conn, None, None
        if conn is None:
            return
        try:
            conn.logout()
        except (imaplib.IMAP4.error, OSError) as e:
            self.log.debug("{mailbox}: logout failed: {error}", mailbox=self._config.name, error=str(e))

    # -- connection

    def _connect(self) -> imaplib.IMAP4:
        c = self._config
        username, password = credentials(c)
        context = tls_context(c)
        try:
            if c.security == "tls":
                conn: imaplib.IMAP4 = imaplib.IMAP4_SSL(c.host, port_of(c), ssl_context=context, timeout=c.timeout)
            else:
                conn = imaplib.IMAP4(c.host, port_of(c), timeout=c.timeout)
                if c.security == "starttls":
                    conn.starttls(ssl_context=context)
        except (OSError, imaplib.IMAP4.abort) as e:
            raise unavailable(c, e) from None
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
            _drop(conn)
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
            if not reused:
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

    def _uid_cmd(self, conn: imaplib.IMAP4, command: str, *args: str) -> list:
        return self._ok(self._call(lambda: conn.uid(command, *args)), "UID " + command)

    def _call(self, f: Callable[[], tuple[str, list]]) -> tuple[str, list]:
        try:
            return f()
        except (imaplib.IMAP4.abort, OSError) as e:
            _drop(self._conn)
            self._conn, self._selected = None, None
            raise unavailable(self._config, e) from None
        except imaplib.IMAP4.error as e:
            raise MailboxError(f"{self._config.name}: the server rejected a command: {_text(e.args[0])}") from None

    def _ok(self, result: tuple[str, list], what: str) -> list:
        typ, data = result
        if typ != "OK":
            raise MailboxError(f"{self._config.name}: {what} failed: {_text(data)}")
        return data


def _drop(conn: Optional[imaplib.IMAP4]) -> None:
    """Close a broken connection's socket without talking to the server."""
    if conn is not None:
        try:
            conn.shutdown()
        except OSError:
            pass
