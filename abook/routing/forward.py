"""The forward mailbox: unwrap ``message/rfc822`` copies and work out whom each wrapper was forwarded for.

A forwarding rule (or a journaling/redirect rule) sends the forward mailbox a wrapper whose From is the
user's or queue's own address and whose attachments are the original messages. The owner is the first
active user or queue whose address appears, in this order, in the wrapper's From, X-Original-To,
Delivered-To, To and Cc (``store.owners.owner_for_address_txn`` decides); the forward mailbox's own address
matches nobody and is skipped.
"""

from __future__ import annotations

import base64
import quopri
from email import policy
from email.message import Message
from email.utils import getaddresses

OWNER_HEADERS = ("From", "X-Original-To", "Delivered-To", "To", "Cc")


def unwrap(msg: Message) -> tuple[bytes, ...]:
    """The raw bytes of every ``message/rfc822`` part of a wrapper read by ``tracking.parse.read`` (nested
    wrappers are not opened)."""
    inner: list[bytes] = []
    for part in msg.walk():
        if part is msg or part.get_content_type() != "message/rfc822":
            continue
        payload = part.get_payload()
        if not (isinstance(payload, list) and payload):
            continue
        data = payload[0].as_bytes(policy=policy.compat32)
        # RFC 2046 allows only 7bit/8bit/binary here, but some clients base64-encode the copy
        cte = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if cte == "base64":
            data = base64.b64decode(data)
        elif cte == "quoted-printable":
            data = quopri.decodestring(data.lstrip(b"\r\n"))
        if data.strip():
            inner.append(data)
    return tuple(inner)


def candidate_addresses(msg: Message) -> tuple[str, ...]:
    """The wrapper's addresses in the order they are tried as the owner, lower-cased, without repeats."""
    seen: list[str] = []
    for header in OWNER_HEADERS:
        for _name, address in getaddresses([str(v) for v in msg.get_all(header, [])]):
            address = address.strip().lower()
            if "@" in address and address not in seen:
                seen.append(address)
    return tuple(seen)
