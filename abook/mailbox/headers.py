"""Header fields as plain, clean text: decoding (encoded words, 8-bit bytes, wrong charsets), addresses,
Message-IDs and a message's identity, and the head of a message the router decides on (``Head``).

Everything a message's header says is read here, with the ``email`` package's tolerant ``compat32``
parser (``tracking/parse.py`` reads the body); nothing here raises for a bad header. It sits in the mailbox
layer because the backends read Message-IDs and headers too, and tracking imports the mailbox layer, never
the other way round.
"""

from __future__ import annotations

import base64
import binascii
import email.parser
import email.policy
import hashlib
import quopri
import re
from dataclasses import dataclass
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from datetime import timezone

#: parties of a message: (header, display name, address as written)
Address = tuple[str, str, str]

# ---------------------------------------------------------------------------------------------------------
# Text cleaning and header decoding


def clean(text: str) -> str:
    """Text every store accepts: lone surrogates (8-bit bytes read as ASCII) and NULs removed."""
    if not text.isascii():
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\x00", "") if "\x00" in text else text


def decode_bytes(data: bytes, charset: str | None) -> str:
    """Bytes in a declared charset, falling back to UTF-8 then Windows-1252 when it is wrong or unknown."""
    candidates = ["utf-8"]
    if charset:
        charset = charset.split("*", 1)[0].strip().strip('"').lower()
        if charset and charset not in ("unknown-8bit", "x-unknown", "utf-8"):
            candidates.insert(0, charset)
    for cs in candidates:
        try:
            return data.decode(cs)
        except (LookupError, UnicodeDecodeError, ValueError):
            continue
    return data.decode("cp1252", "replace")


_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_BETWEEN_WORDS = re.compile(r"(\?=)\s+(=\?)")


def _decode_word(match: re.Match[str]) -> str:
    charset, encoding, text = match.groups()
    try:
        if encoding in "bB":
            data = base64.b64decode(text + "=" * (-len(text) % 4))
        else:
            data = quopri.decodestring(text.replace("_", " ").encode("ascii", "replace"), header=True)
    except (binascii.Error, ValueError):
        return match.group(0)
    return decode_bytes(data, charset)


def header_text(value: object) -> str:
    """One header value (encoded words, 8-bit bytes, wrong charsets and all) as clean, unfolded text."""
    if value is None:
        return ""
    raw = value if isinstance(value, str) else str(value)
    if not raw.isascii():  # 8-bit header bytes arrive surrogate-escaped
        raw = decode_bytes(raw.encode("utf-8", "surrogateescape"), None)
    raw = _unfold(raw)
    if "=?" in raw:
        raw = _ENCODED_WORD.sub(_decode_word, _BETWEEN_WORDS.sub(r"\1\2", raw))
    return clean(raw)


def _unfold(text: str) -> str:
    return re.sub(r"\r?\n[ \t]*", " ", text).strip()


def _raw_header(msg: Message, name: str) -> list[str]:
    """Every value of a header as the parser kept it (str with surrogate escapes), never a Header."""
    out = []
    for key, value in msg._headers:  # noqa: SLF001 (compat32 keeps them here; get() wraps 8-bit in Header)
        if key.lower() == name:
            out.append(str(value))
    return out


# ---------------------------------------------------------------------------------------------------------
# Message-IDs and identity

_MSGID = re.compile(r"<([^<>]*)>")


def normalise_message_id(value: str) -> str | None:
    """``<Local@Example.COM>`` -> ``Local@example.com``; None when the value names no id."""
    ids = message_ids(value)
    return ids[0] if ids else None


def message_ids(value: str) -> list[str]:
    """Every id in an In-Reply-To / References value, normalised, in order."""
    found = _MSGID.findall(value) or value.split()
    out = []
    for item in found:
        item = re.sub(r"\s+", "", item).strip("<>")
        if not item:
            continue
        if "@" in item:
            local, _, domain = item.rpartition("@")
            item = f"{local}@{domain.lower()}"
        out.append(clean(item)[:998])
    return out


def _fingerprint(*values: str) -> str:
    h = hashlib.sha256()
    for v in values:
        h.update(re.sub(r"\s+", " ", v).strip().encode("utf-8", "replace"))
        h.update(b"\x00")
    return h.hexdigest()


def _date_key(value: str) -> str:
    try:
        d = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return value.strip()
    if d.tzinfo is None:
        d = d.replace(tzinfo=timezone.utc)
    return str(int(d.timestamp()))


def _message_key(message_id: str | None, date: str, sender: str, to: str, cc: str, subject: str) -> str:
    if message_id:
        return "m:" + _fingerprint(message_id, _date_key(date), sender.lower(), subject)[:60]
    return "h:" + _fingerprint(_date_key(date), sender.lower(), to.lower(), cc.lower(), subject)[:60]


def _addresses(msg: Message, headers: tuple[str, ...]) -> list[Address]:
    out: list[Address] = []
    for name in headers:
        values = _raw_header(msg, name)
        if not values:
            continue
        decoded = [v if v.isascii() else decode_bytes(v.encode("utf-8", "surrogateescape"), None) for v in values]
        pairs = _simple_addresses(decoded)
        if pairs is None:
            try:
                pairs = getaddresses(decoded)
            except Exception:
                pairs = []
        for display, addr in pairs:
            addr = clean(addr.strip())
            if "<" in addr:  # an unterminated "Name <addr" that the parser kept whole
                addr = addr.rsplit("<", 1)[1].strip(" >")
            local, at, domain = addr.rpartition("@")
            if not at or not local or not domain:
                continue
            out.append((name, header_text(display) if display else "", addr))
    return out


_SIMPLE_ITEM = re.compile(r"^\s*(?:([^<>]*?)\s*<([^<>\s@]+@[^<>\s@]+)>|([^<>\s@]+@[^<>\s@]+))\s*$")


def _simple_addresses(values: list[str]) -> list[tuple[str, str]] | None:
    """The common case (``Name <a@b>, c@d``) without the email package's character-by-character parser;
    None when anything calls for the full RFC 5322 parser (quotes, comments, groups, escapes, ...)."""
    out = []
    for value in values:
        if any(c in value for c in '"()\\;:[]'):
            return None
        for item in _unfold(value).split(","):
            if not item.strip():
                continue
            m = _SIMPLE_ITEM.match(item)
            if m is None:
                return None
            out.append((" ".join((m.group(1) or "").split()), m.group(2) or m.group(3)))
    return out


def _first(msg: Message, name: str) -> str:
    values = _raw_header(msg, name)
    return header_text(values[0]) if values else ""


# ---------------------------------------------------------------------------------------------------------
# The head: what the router decides on before tracking (loop damping, marks, untracked rows)


@dataclass(frozen=True)
class Head:
    message_id: str | None  # normalised
    sender: str | None  # the first From address, as written
    subject: str | None


def head_of(msg: Message) -> Head:
    """The Message-ID, From address and Subject of a read message (empty values are None)."""
    try:
        senders = [a for h, _, a in _addresses(msg, ("from",))]
        return Head(normalise_message_id(_first(msg, "message-id")), senders[0] if senders else None,
                    _first(msg, "subject") or None)
    except Exception:  # a header no rule foresaw: the head stays unknown, never a crash
        return Head(None, None, None)


#: a line break followed by an empty line (the parser breaks lines at CRLF, CR and LF alike)
_EMPTY_LINE = re.compile(rb"\n[\r\n]|\r\r")


def read_head(raw: bytes) -> Head:
    """``head_of`` a message whose body is not read: only the bytes up to the first empty line are parsed
    (a message too large to be read whole before it is tracked)."""
    if raw[:1] in (b"\r", b"\n"):
        return Head(None, None, None)  # an empty first line: no header fields
    end = _EMPTY_LINE.search(raw)
    head = raw if end is None else raw[:end.start() + 1]
    try:
        msg = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(head)
    except Exception:  # the email package raising on a hostile header: nothing is known of it
        return Head(None, None, None)
    return head_of(msg)
