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

import binascii
import email
import email.parser
import email.policy
from dataclasses import dataclass, field
from email.message import Message
from email.utils import parsedate_to_datetime
from datetime import datetime, timezone
from typing import Iterator

from abook.mailbox.headers import (  # noqa: F401 (header_text and friends: read here, as before the split)
    Address,
    Head,
    _addresses,
    _first,
    _message_key,
    _raw_header,
    clean,
    decode_bytes,
    head_of,
    header_text,
    message_ids,
    normalise_message_id,
    read_head,
)


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
