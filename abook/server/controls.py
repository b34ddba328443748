"""Request and response controls the server understands: paged results (RFC 2696), server-side sort
(RFC 2891) and Virtual List View (draft-ietf-ldapext-ldapv3-vlv-09, which Outlook and Roundcube send
critical with a sort control to browse a book). Control values are decoded here from their raw bytes
with the framer's bounded reader.

Any other control sent critical is refused with unavailableCriticalExtension (12). Non-critical unknown
controls are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ldaptor.protocols.ldap import ldaperrors

from abook.directory.api import SortKey, VlvRequest, VlvResult
from abook.server import encode
from abook.server.framing import FrameError, span

PAGED = b"1.2.840.113556.1.4.319"
SORT_REQUEST = b"1.2.840.113556.1.4.473"
SORT_RESPONSE = b"1.2.840.113556.1.4.474"
VLV = b"2.16.840.1.113730.3.4.9"
VLV_RESPONSE = b"2.16.840.1.113730.3.4.10"
SUPPORTED = (PAGED, SORT_REQUEST, VLV)
#: LDAP result code of a search whose VLV request could not be served (the draft's section 9)
VLV_ERROR = 76
#: virtualListViewResult codes of the draft
SORT_CONTROL_MISSING = 60
OFFSET_RANGE_ERROR = 61
#: the largest count a VLV request may carry (maxInt, RFC 4511)
MAX_INT = 2**31 - 1


@dataclass(frozen=True)
class SearchControls:
    page_size: int | None = None
    cookie: bytes = b""
    sort: tuple[SortKey, ...] | None = None
    sort_critical: bool = False
    vlv: VlvRequest | None = None
    vlv_critical: bool = False


def _ctl_type(oid: bytes | str) -> bytes:
    return oid.encode("ascii", "replace") if isinstance(oid, str) else bytes(oid)


def check_critical(controls: Sequence[tuple] | None, understood: Sequence[bytes] = ()) -> None:
    """Refuse (12) any critical control that is not in ``understood``."""
    for oid, critical, _value in controls or ():
        if critical and _ctl_type(oid) not in understood:
            raise ldaperrors.LDAPUnavailableCriticalExtension(
                "unsupported critical control " + _ctl_type(oid).decode("ascii", "replace")
            )


def _int(buf: bytes, start: int, stop: int) -> int:
    if not 1 <= stop - start <= 8:
        raise FrameError("bad integer")
    return int.from_bytes(buf[start:stop], "big", signed=True)


def decode_paged(value: bytes | None) -> tuple[int, bytes]:
    """realSearchControlValue ::= SEQUENCE { size INTEGER, cookie OCTET STRING } -> (size, cookie)."""
    buf = value or b""
    tag, start, end = span(buf, 0, len(buf))
    if tag != 0x30 or end != len(buf):
        raise FrameError("bad paged results value")
    t1, s1, e1 = span(buf, start, end)
    t2, s2, e2 = span(buf, e1, end)
    if t1 != 0x02 or t2 != 0x04 or e2 != end:
        raise FrameError("bad paged results value")
    size = _int(buf, s1, e1)
    if size < 0:
        raise FrameError("negative page size")
    return size, buf[s2:e2]


def decode_sort(value: bytes | None) -> tuple[SortKey, ...]:
    """SortKeyList ::= SEQUENCE OF SEQUENCE { attributeType, [0] orderingRule OPT, [1] reverseOrder DEF FALSE }."""
    buf = value or b""
    tag, pos, end = span(buf, 0, len(buf))
    if tag != 0x30 or end != len(buf):
        raise FrameError("bad sort value")
    keys = []
    while pos < end:
        t, s, e = span(buf, pos, end)
        if t != 0x30:
            raise FrameError("bad sort key")
        at, a_s, a_e = span(buf, s, e)
        if at != 0x04 or a_s == a_e:
            raise FrameError("bad sort key")
        rule = None
        reverse = False
        p = a_e
        while p < e:
            it, i_s, i_e = span(buf, p, e)
            if it == 0x80:
                rule = buf[i_s:i_e].decode("utf-8", "replace")
            elif it == 0x81:
                reverse = i_e > i_s and buf[i_s] != 0
            else:
                raise FrameError("bad sort key")
            p = i_e
        keys.append(SortKey(buf[a_s:a_e].decode("utf-8", "replace"), reverse, rule))
        pos = e
    if not keys:
        raise FrameError("empty sort key list")
    return tuple(keys)


def _count(buf: bytes, start: int, stop: int) -> int:
    n = _int(buf, start, stop)
    if not 0 <= n <= MAX_INT:
        raise FrameError("count out of range")
    return n


def decode_vlv(value: bytes | None) -> VlvRequest:
    """VirtualListViewRequest ::= SEQUENCE { beforeCount INTEGER, afterCount INTEGER,
    target CHOICE { byOffset [0] SEQUENCE { offset INTEGER, contentCount INTEGER },
    greaterThanOrEqual [1] AssertionValue }, contextID OCTET STRING OPTIONAL }."""
    buf = value or b""
    tag, start, end = span(buf, 0, len(buf))
    if tag != 0x30 or end != len(buf):
        raise FrameError("bad VLV value")
    t1, s1, e1 = span(buf, start, end)
    t2, s2, e2 = span(buf, e1, end)
    t3, s3, e3 = span(buf, e2, end)
    if t1 != 0x02 or t2 != 0x02:
        raise FrameError("bad VLV counts")
    before, after = _count(buf, s1, e1), _count(buf, s2, e2)
    offset, content_count, assertion = 0, 0, None
    if t3 == 0xA0:
        o_t, o_s, o_e = span(buf, s3, e3)
        c_t, c_s, c_e = span(buf, o_e, e3)
        if o_t != 0x02 or c_t != 0x02 or c_e != e3:
            raise FrameError("bad VLV byOffset")
        offset, content_count = _count(buf, o_s, o_e), _count(buf, c_s, c_e)
    elif t3 == 0x81:
        try:
            assertion = buf[s3:e3].decode("utf-8")
        except UnicodeDecodeError:
            raise FrameError("VLV assertion value is not UTF-8") from None
    else:
        raise FrameError("bad VLV target")
    context = b""
    if e3 < end:
        t4, s4, e4 = span(buf, e3, end)
        if t4 != 0x04 or e4 != end:
            raise FrameError("bad VLV contextID")
        context = buf[s4:e4]
    return VlvRequest(before, after, offset, content_count, assertion, context)


def search_controls(controls: Sequence[tuple] | None) -> SearchControls:
    """Decode the controls of a SearchRequest; raise ldaperrors for bad or unsupported critical ones."""
    check_critical(controls, SUPPORTED)
    page_size, cookie, sort, sort_critical, vlv, vlv_critical = None, b"", None, False, None, False
    for oid, critical, value in controls or ():
        oid = _ctl_type(oid)
        try:
            if oid == PAGED:
                page_size, cookie = decode_paged(value)
            elif oid == SORT_REQUEST:
                sort, sort_critical = decode_sort(value), bool(critical)
            elif oid == VLV:
                vlv, vlv_critical = decode_vlv(value), bool(critical)
        except FrameError as e:
            raise ldaperrors.LDAPProtocolError("malformed control value: " + e.reason) from None
    return SearchControls(page_size, cookie, sort, sort_critical, vlv, vlv_critical)


def paged_response(cookie: bytes) -> bytes:
    value = encode.tlv(0x30, encode.ber_int(0) + encode.octets(cookie))
    return encode.control(PAGED, value)


def sort_response(code: int) -> bytes:
    return encode.control(SORT_RESPONSE, encode.tlv(0x30, encode.ber_int(code, 0x0A)))


def vlv_response(result: VlvResult) -> bytes:
    """VirtualListViewResponse ::= SEQUENCE { targetPosition INTEGER, contentCount INTEGER,
    virtualListViewResult ENUMERATED, contextID OCTET STRING OPTIONAL }."""
    body = encode.ber_int(result.target) + encode.ber_int(result.content_count) + encode.ber_int(result.result, 0x0A)
    if result.context:
        body += encode.octets(result.context)
    return encode.control(VLV_RESPONSE, encode.tlv(0x30, body))
