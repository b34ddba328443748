"""Reading a raw RFC 5322 message into the plain values tracking needs, whatever state it is in.

``parse_message(raw)`` never raises for a bad message: it uses the ``email`` package's most tolerant
policy (``compat32``), decodes every header word by word with charset fallbacks (wrong, missing or
unknown charsets, 8-bit headers), and turns a message with no header at all (empty input, binary
garbage) into ``Unreadable``. Text is cleaned so every store accepts it (no NUL, no lone surrogates).

Message identity (``identify``): the normalised Message-ID (angle brackets and whitespace removed, the
domain part lowercased) plus a fingerprint of Date, From and Subject, hashed into ``message_key``. Two
copies of one message in two mailboxes share the key; two different messages that reuse a Message-ID
differ in the fingerprint and are never merged. Without a Message-ID the key hashes Date, From, To, Cc
and Subject instead.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.parser
import email.policy
import hashlib
import quopri
import re
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses, parsedate_to_datetime
from datetime import datetime, timezone
from typing import Iterator

#: parties of a message: (header, display name, address as written)
Address = tuple[str, str, str]


class Unreadable(Exception):
    """The bytes are not a message (no header at all); the reason code is ``parse_error``."""


@dataclass(frozen=True)
class Part:
    """An attachment: a leaf MIME part that is not the message's body, or a nested message.

    Its content is decoded when ``body`` is read, one attachment at a time, so a 50 MB message never
    holds all its attachments decoded at once."""

    path: str
    filename: str | None
    mimetype: str
    content_id: str | None
    source: Message = field(repr=False, compare=False)

    @property
    def body(self) -> bytes:
        if self.mimetype == "message/rfc822":
            return _nested_bytes(self.source)
        return _payload_bytes(self.source)


@dataclass(frozen=True)
class ParsedMessage:
    message_id: str | None
    message_key: str
    subject: str
    sender: tuple[str, str] | None  # (display name, address)
    addresses: tuple[Address, ...]  # From, To, Cc, Bcc in header order
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    date: datetime | None
    body_text: str | None
    body_html: str | None
    mimetype: str
    attachments: tuple[Part, ...] = field(default=(), repr=False)


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


# ---------------------------------------------------------------------------------------------------------
# Parsing


#: the parser is fed this much at a time: one decoded copy of a big message costs ~7x its size, fed ~2x
FEED_CHUNK = 1 << 20


def read(raw: bytes) -> Message:
    parser = email.parser.BytesFeedParser(policy=email.policy.compat32)
    view = memoryview(raw)
    for start in range(0, len(raw), FEED_CHUNK):
        parser.feed(bytes(view[start:start + FEED_CHUNK]))
    msg = parser.close()
    if not msg._headers:  # noqa: SLF001
        raise Unreadable("no header fields: not an RFC 5322 message")
    return msg


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


def _parse_date(value: str) -> datetime | None:
    if not value:
        return None
    try:
        d = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if d is None:
        return None
    return d if d.tzinfo else d.replace(tzinfo=timezone.utc)


def parse_message(raw: bytes) -> ParsedMessage:
    """The message's values; raises ``Unreadable`` (and only that) when it is no message at all."""
    try:
        msg = read(raw)
        return _parse(msg)
    except Unreadable:
        raise
    except Exception as e:  # the email package raising on a hostile message is a parse error, not a crash
        raise Unreadable(f"{type(e).__name__}: {e}"[:500]) from None


def _parse(msg: Message) -> ParsedMessage:
    message_id = normalise_message_id(_first(msg, "message-id"))
    subject = _first(msg, "subject")
    date = _first(msg, "date")
    addresses = _addresses(msg, ("from", "to", "cc", "bcc"))
    from_addrs = [(d, a) for h, d, a in addresses if h == "from"]
    sender = from_addrs[0] if from_addrs else None
    key = _message_key(
        message_id,
        date,
        sender[1] if sender else _first(msg, "from"),
        ",".join(a for h, _, a in addresses if h == "to"),
        ",".join(a for h, _, a in addresses if h == "cc"),
        subject,
    )
    text, html, attachments = _bodies(msg)
    return ParsedMessage(
        message_id=message_id,
        message_key=key,
        subject=subject,
        sender=sender,
        addresses=tuple(addresses),
        in_reply_to=tuple(message_ids(_first(msg, "in-reply-to"))),
        references=tuple(message_ids(" ".join(_raw_header(msg, "references")))),
        date=_parse_date(date),
        body_text=text,
        body_html=html,
        mimetype=_content_type(msg),
        attachments=tuple(attachments),
    )


def _content_type(part: Message) -> str:
    try:
        return clean(part.get_content_type())[:128]
    except Exception:
        return "text/plain"


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    if name is None:
        return None
    return header_text(name) or None


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    if isinstance(payload, str) and payload.isascii() and _cte(part) == "base64":
        # straight from the str: the email package encodes it, splits its lines and joins them first,
        # three more copies of a big attachment
        try:
            return binascii.a2b_base64(payload)
        except (binascii.Error, ValueError):
            pass  # bad padding and such: the email package repairs what it can
    try:
        data = part.get_payload(decode=True)
    except Exception:
        data = None
    if isinstance(data, bytes):
        return data
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def _cte(part: Message) -> str:
    return str(part.get("content-transfer-encoding", "")).strip().lower()


#: charsets in which every ASCII byte is that ASCII character (the codec's name -> whether it is)
_ASCII_SAFE: dict[str, bool] = {}
_ASCII = bytes(range(128))


def _ascii_safe(charset: str | None) -> bool:
    """Whether ASCII bytes declared in ``charset`` decode (in ``decode_bytes``) to the same characters: no
    charset, an unknown one (UTF-8 is tried then), or a codec that leaves ASCII alone (not UTF-16, UTF-7...)."""
    if not charset:
        return True
    name = charset.split("*", 1)[0].strip().strip('"').lower()
    if name not in _ASCII_SAFE:
        try:
            _ASCII_SAFE[name] = _ASCII.decode(name) == _ASCII.decode("ascii")
        except LookupError:
            _ASCII_SAFE[name] = True
        except (UnicodeDecodeError, ValueError):
            _ASCII_SAFE[name] = False
    return _ASCII_SAFE[name]


def _has_payload(part: Message) -> bool:
    payload = part.get_payload()
    return bool(payload) and not payload.isspace() if isinstance(payload, str) else bool(payload)


def _text_of(part: Message) -> str:
    """A body part's text. The part is not read again, so its payload is let go as soon as it is converted:
    a big body is never held as the payload, its bytes and its text at once."""
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    payload = part.get_payload()
    if (isinstance(payload, str) and payload.isascii() and _cte(part) in ("", "7bit", "8bit", "binary")
            and _ascii_safe(charset)):
        part.set_payload("")
        return clean(payload)  # ASCII text as it stands: decoding its bytes would give the same characters
    data = _payload_bytes(part)
    del payload
    part.set_payload("")
    return clean(decode_bytes(data, charset))


def _walk(part: Message, path: str) -> Iterator[tuple[str, Message]]:
    """Leaf parts and nested messages (not descended into), each with its MIME part path."""
    payload = part.get_payload()
    ctype = _content_type(part)
    if ctype == "message/rfc822" or not part.is_multipart() or not isinstance(payload, list):
        yield path, part
        return
    for i, sub in enumerate(payload, 1):
        if isinstance(sub, Message):
            yield from _walk(sub, f"{path}.{i}" if path else str(i))


def _nested_bytes(part: Message) -> bytes:
    payload = part.get_payload()
    inner = payload[0] if isinstance(payload, list) and payload else None
    if isinstance(inner, Message):
        try:
            return inner.as_bytes(policy=email.policy.compat32)
        except Exception:
            return inner.as_string().encode("utf-8", "surrogateescape")
    return _payload_bytes(part)


def _bodies(msg: Message) -> tuple[str | None, str | None, list[Part]]:
    text: str | None = None
    html: str | None = None
    attachments: list[Part] = []
    for path, part in _walk(msg, ""):
        ctype = _content_type(part)
        if ctype.startswith("multipart/"):  # a multipart with no usable boundary: its text is the body
            ctype = "text/plain"
        filename = _filename(part)
        disposition = (part.get("content-disposition") or "")
        inline = "attachment" not in str(disposition).lower() and filename is None
        if inline and ctype == "text/plain" and text is None:
            text = _text_of(part)
            continue
        if inline and ctype == "text/html" and html is None:
            html = _text_of(part)
            continue
        if ctype == "message/rfc822":
            filename = filename or "message.eml"
        elif not filename and not _has_payload(part):
            continue
        cid = part.get("content-id")
        attachments.append(
            Part(
                path=path or "1",
                filename=filename,
                mimetype=ctype,
                content_id=header_text(cid).strip("<>") or None if cid else None,
                source=part,
            )
        )
    return text, html, attachments
