"""Decoding a checked PDU into the LDAPMessage ``handle`` dispatches.

``framing.Framer`` has checked every size, depth and DN limit before anything here runs. Searches without
controls are decoded once per distinct request (mail clients repeat them) and carry their filter's wire
form, the key of the directory's caches.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

from ldaptor.protocols import pureber, pureldap

from abook import ber
from abook.server import rootdse
from abook.server.framing import SEARCH, span

_DECODED_MAX = 4096
#: decoded SearchRequests (read-only after decoding) by their op's bytes (no message id, no controls)
_DECODED_SEARCHES: dict[bytes, Any] = {}


def decode(berdecoder: Any, pdu: bytes) -> Any:
    """The LDAPMessage of a checked PDU. Searches without controls are decoded once per distinct
    request (mail clients repeat them) and carry their filter's wire form for the directory's caches."""
    msg_id, op_start, op_end = search_op(pdu)
    if op_start < 0:
        return ldaptor_decode(berdecoder, pdu)
    key = pdu[op_start:op_end]
    op = _DECODED_SEARCHES.get(key)
    if op is None:
        msg = ldaptor_decode(berdecoder, pdu)
        op = getattr(msg, "value", None)
        if not isinstance(op, pureldap.LDAPSearchRequest):
            return msg
        op.abook_filter_wire = filter_wire(key)
        if len(_DECODED_SEARCHES) >= _DECODED_MAX:
            _DECODED_SEARCHES.clear()
        _DECODED_SEARCHES[key] = op
        return msg
    return Message(msg_id, op)


def ldaptor_decode(berdecoder: Any, pdu: bytes) -> Any:
    with contextlib.redirect_stdout(io.StringIO()):  # ldaptor prints unknown tags
        msg, _used = pureber.berDecodeObject(berdecoder, pdu)
    return msg


class Message:
    """What ``handle`` reads of an LDAPMessage, for a search decoded from the cache."""

    __slots__ = ("id", "value", "controls")

    def __init__(self, msg_id: int, value: Any) -> None:
        self.id, self.value, self.controls = msg_id, value, None


def search_op(pdu: bytes) -> tuple[int, int, int]:
    """(message id, op start, op end) of a SearchRequest PDU without controls, else (0, -1, -1).

    The PDU has passed ``Framer.check_message``, so every length fits its parent."""
    end = len(pdu)
    _tag, body, body_end = span(pdu, 0, end)
    tag, id_start, id_end = span(pdu, body, body_end)
    if tag != 0x02 or id_end >= body_end or pdu[id_end] != SEARCH:
        return 0, -1, -1
    _tag, _start, op_end = span(pdu, id_end, body_end)
    if op_end != body_end:
        return 0, -1, -1  # controls follow (paged results cookies differ per page): not cached
    return int.from_bytes(pdu[id_start:id_end], "big", signed=True), id_end, op_end


def filter_wire(op: bytes) -> bytes:
    """The filter TLV of a SearchRequest op: after base, scope, deref, sizeLimit, timeLimit, typesOnly."""
    _tag, pos, end = span(op, 0, len(op))
    for _ in range(6):
        _tag, _start, pos = span(op, pos, end)
    _tag, _start, filter_end = span(op, pos, end)
    return op[pos:filter_end]


def is_starttls(op: Any) -> bool:
    return isinstance(op, pureldap.LDAPExtendedRequest) and ber.as_bytes(op.requestName) == rootdse.STARTTLS


def text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value
