"""A BER framer that checks every limit on the raw bytes, before ldaptor parses anything.

ldaptor's decoder buffers whatever length a header claims and recurses once per nesting level, so a
hostile client could make it hold gigabytes or exhaust the stack. ``Framer.feed`` reads only the outer
tag and length of each LDAPMessage (rejecting indefinite lengths, length-of-length over 4 and lengths
over the current limit as soon as the header arrives, so nothing over the limit is ever buffered), and
``check_message`` walks a complete PDU iteratively: every nested length must fit its parent, nesting is
bounded, the message id is in 1..maxInt (RFC 4511 4.1.1.1), the protocol op must be a request abook
knows, DNs are bounded, a SearchRequest's filter is bounded in depth and element count, and a BOOLEAN
(typesOnly, a control's criticality) is one octet (X.690 8.2.1). Only then is the PDU handed to ldaptor.

The Framer holds no reference back to its connection (``max_size`` is a plain attribute the connection
updates when it binds): a connection and its buffer are then freed as soon as the connection is dropped,
not by the cyclic garbage collector, which the daemon runs rarely (``process.tune_gc``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: LDAPMessage protocolOp tags of the requests a client may send (RFC 4511 section 4.2 ff.)
BIND, UNBIND, SEARCH, MODIFY, ADD, DELETE, MODIFY_DN, COMPARE, ABANDON, EXTENDED = (
    0x60, 0x42, 0x63, 0x66, 0x68, 0x4A, 0x6C, 0x6E, 0x50, 0x77,
)
REQUEST_TAGS = frozenset((BIND, UNBIND, SEARCH, MODIFY, ADD, DELETE, MODIFY_DN, COMPARE, ABANDON, EXTENDED))
#: requests whose first element is the DN they name
_DN_FIRST = frozenset((SEARCH, MODIFY, ADD, MODIFY_DN, COMPARE))
#: Filter CHOICE tags (RFC 4511 4.5.1): and, or, not are the ones that nest
FILTER_SETS = frozenset((0xA0, 0xA1))
FILTER_NOT = 0xA2
FILTER_TAGS = frozenset((0xA0, 0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0x87, 0xA8, 0xA9))
_CONTROLS = 0xA0
#: nesting allowed outside the filter: message, op, a leaf filter's inner sequences, controls
_STRUCTURE_DEPTH = 8
_BOOLEAN = 0x01


class FrameError(Exception):
    """The bytes are not an acceptable LDAPMessage; the connection is to be ended with a notice."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class FrameLimits:
    max_filter_depth: int = 32
    max_filter_elements: int = 512
    max_dn_length: int = 4096


def read_header(buf: bytes | bytearray | memoryview, pos: int, end: int) -> tuple[int, int, int] | None:
    """(tag, content length, header length) of the TLV at ``pos``, or None if the header is incomplete."""
    if end - pos < 2:
        return None
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise FrameError("multi-byte tags are not used by LDAP")
    first = buf[pos + 1]
    if first < 0x80:
        return tag, first, 2
    count = first & 0x7F
    if count == 0:
        raise FrameError("indefinite length")
    if count > 4:
        raise FrameError("length of length over 4 octets")
    if end - pos < 2 + count:
        return None
    length = int.from_bytes(buf[pos + 2 : pos + 2 + count], "big")
    return tag, length, 2 + count


def span(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of a TLV that must lie wholly within [pos, end)."""
    h = read_header(buf, pos, end)
    if h is None:
        raise FrameError("truncated element")
    tag, length, hl = h
    start = pos + hl
    if start + length > end:
        raise FrameError("element overruns its parent")
    return tag, start, start + length


def _check_structure(pdu: bytes, max_depth: int) -> None:
    """Every nested length fits its parent; constructed nesting stays within ``max_depth``."""
    ends = [len(pdu)]
    pos = 0
    while ends:
        if pos == ends[-1]:
            ends.pop()
            continue
        tag, start, stop = span(pdu, pos, ends[-1])
        if tag & 0x20:
            if len(ends) > max_depth:
                raise FrameError("elements nested too deep")
            ends.append(stop)
            pos = start
        else:
            pos = stop


def _check_filter(pdu: bytes, pos: int, end: int, limits: FrameLimits) -> None:
    """Walk the Filter in [pos, end) iteratively: known choices only, bounded depth and element count."""
    elements = 0
    stack = [(end, 0)]  # (end of a container, depth of its children)
    while stack:
        container_end, depth = stack[-1]
        if pos == container_end:
            stack.pop()
            continue
        tag, start, stop = span(pdu, pos, container_end)
        if tag not in FILTER_TAGS:
            raise FrameError("unknown filter choice")
        elements += 1
        if elements > limits.max_filter_elements:
            raise FrameError("filter has too many elements")
        if tag in FILTER_SETS or tag == FILTER_NOT:
            if depth + 1 > limits.max_filter_depth:
                raise FrameError("filter nested too deep")
            if tag == FILTER_NOT and start == stop:
                raise FrameError("empty not filter")
            stack.append((stop, depth + 1))
            pos = start
        else:
            pos = stop


def _check_criticality(pdu: bytes, pos: int, end: int) -> None:
    """Each Control ::= SEQUENCE { controlType, criticality BOOLEAN DEFAULT FALSE, controlValue OPTIONAL }:
    a criticality present is one octet."""
    while pos < end:
        _, start, pos = span(pdu, pos, end)
        _, _, inner = span(pdu, start, pos)  # controlType
        if inner < pos:
            tag, b_start, b_end = span(pdu, inner, pos)
            if tag == _BOOLEAN and b_end - b_start != 1:
                raise FrameError("BOOLEAN not one octet")


def check_message(pdu: bytes, limits: FrameLimits) -> int:
    """Check a complete LDAPMessage PDU; return its protocolOp tag. Raises FrameError."""
    _check_structure(pdu, limits.max_filter_depth + _STRUCTURE_DEPTH)
    tag, start, end = span(pdu, 0, len(pdu))
    if tag != 0x30 or end != len(pdu):
        raise FrameError("not an LDAPMessage")
    id_tag, id_start, id_end = span(pdu, start, end)
    if id_tag != 0x02 or not 1 <= id_end - id_start <= 4 or pdu[id_start] & 0x80:
        raise FrameError("bad message id")  # MessageID ::= INTEGER (0 .. maxInt): 1-4 octets, not negative
    if id_end == end:
        raise FrameError("no protocol op")
    op, op_start, op_end = span(pdu, id_end, end)
    if op not in REQUEST_TAGS:
        raise FrameError("not a request")
    if op_end != end:
        ctl, ctl_start, ctl_end = span(pdu, op_end, end)
        if ctl != _CONTROLS or ctl_end != end:
            raise FrameError("trailing data after the request")
        _check_criticality(pdu, ctl_start, ctl_end)
    if op == DELETE:
        if op_end - op_start > limits.max_dn_length:
            raise FrameError("DN too long")
    elif op in _DN_FIRST or op == BIND:
        pos = op_start
        if op == BIND:
            _, _, pos = span(pdu, pos, op_end)  # version
        dn_tag, dn_start, dn_end = span(pdu, pos, op_end)
        if dn_tag != 0x04:
            raise FrameError("expected a DN")
        if dn_end - dn_start > limits.max_dn_length:
            raise FrameError("DN too long")
        if op == SEARCH:
            pos = dn_end
            for _ in range(4):  # scope, derefAliases, sizeLimit, timeLimit
                _, _, pos = span(pdu, pos, op_end)
            b_tag, b_start, pos = span(pdu, pos, op_end)  # typesOnly
            if b_tag == _BOOLEAN and pos - b_start != 1:
                raise FrameError("BOOLEAN not one octet")
            f_tag, _, f_end = span(pdu, pos, op_end)
            _check_filter(pdu, pos, f_end, limits)
    return op


def extended_name(pdu: bytes) -> bytes | None:
    """The requestName of a checked ExtendedRequest PDU (None if it has none)."""
    _, start, end = span(pdu, 0, len(pdu))
    _, _, id_end = span(pdu, start, end)
    _, op_start, op_end = span(pdu, id_end, end)
    if op_start == op_end:
        return None
    tag, name_start, name_end = span(pdu, op_start, op_end)
    return pdu[name_start:name_end] if tag == 0x80 else None


class Framer:
    """Splits a byte stream into checked LDAPMessage PDUs.

    ``max_size`` is the limit for each new message; the connection raises it once a client binds.
    """

    __slots__ = ("_limits", "max_size", "_buf", "_need")

    def __init__(self, limits: FrameLimits, max_size: int) -> None:
        self._limits = limits
        self.max_size = max_size
        self._buf = bytearray()
        self._need: int | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def release(self) -> None:
        """Drop whatever is buffered (the connection has ended)."""
        self._buf = bytearray()
        self._need = None

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return the complete messages now available as (op tag, PDU)."""
        self._buf += data
        out = []
        while True:
            if self._need is None:
                h = read_header(self._buf, 0, len(self._buf))
                if h is None:
                    break
                tag, length, hl = h
                if tag != 0x30:
                    raise FrameError("not an LDAPMessage")
                if length > self.max_size:
                    raise FrameError("message larger than the limit")
                self._need = hl + length
            if len(self._buf) < self._need:
                break
            pdu = bytes(self._buf[: self._need])
            del self._buf[: self._need]
            self._need = None
            out.append((check_message(pdu, self._limits), pdu))
        return out
