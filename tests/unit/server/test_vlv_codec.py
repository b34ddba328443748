"""The VLV request and response controls (draft-ietf-ldapext-ldapv3-vlv-09) against an independent
encoder and decoder: pyasn1 with the draft's ASN.1, and the window arithmetic of the draft's section 5."""

from __future__ import annotations

import pytest
from ldaptor.protocols.ldap import ldaperrors
from pyasn1.codec.ber import decoder, encoder
from pyasn1.type import namedtype, tag, univ

from abook.directory.api import VlvRequest, VlvResult
from abook.server import controls
from abook.store.vlv import target_by_offset, window


class ByOffset(univ.Sequence):
    tagSet = univ.Sequence.tagSet.tagImplicitly(tag.Tag(tag.tagClassContext, tag.tagFormatConstructed, 0))
    componentType = namedtype.NamedTypes(namedtype.NamedType("offset", univ.Integer()),
                                         namedtype.NamedType("contentCount", univ.Integer()))


class Target(univ.Choice):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("byOffset", ByOffset()),
        namedtype.NamedType("greaterThanOrEqual", univ.OctetString().subtype(
            implicitTag=tag.Tag(tag.tagClassContext, tag.tagFormatSimple, 1))))


class Request(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("beforeCount", univ.Integer()), namedtype.NamedType("afterCount", univ.Integer()),
        namedtype.NamedType("target", Target()), namedtype.OptionalNamedType("contextID", univ.OctetString()))


class Response(univ.Sequence):
    componentType = namedtype.NamedTypes(
        namedtype.NamedType("targetPosition", univ.Integer()), namedtype.NamedType("contentCount", univ.Integer()),
        namedtype.NamedType("virtualListViewResult", univ.Enumerated()),
        namedtype.OptionalNamedType("contextID", univ.OctetString()))


def _request(before: int, after: int, offset: int | None = None, count: int = 0, value: bytes | None = None,
             context: bytes | None = None) -> bytes:
    r = Request()
    r["beforeCount"], r["afterCount"] = before, after
    if value is None:
        by = r["target"]["byOffset"]
        by["offset"], by["contentCount"] = offset, count
    else:
        r["target"]["greaterThanOrEqual"] = value
    if context is not None:
        r["contextID"] = context
    return encoder.encode(r)


def test_requests_decode_as_pyasn1_encodes_them():
    assert controls.decode_vlv(_request(0, 49, 51, 0)) == VlvRequest(0, 49, 51, 0, None, b"")
    assert controls.decode_vlv(_request(3, 300, 70000, 100000, context=b"ctx")) == VlvRequest(
        3, 300, 70000, 100000, None, b"ctx")
    assert controls.decode_vlv(_request(1, 2, value="Müller".encode())) == VlvRequest(1, 2, 0, 0, "Müller", b"")
    sc = controls.search_controls([(controls.VLV, True, _request(0, 9, 1, 0))])
    assert sc.vlv == VlvRequest(0, 9, 1, 0) and sc.vlv_critical


@pytest.mark.parametrize("value", [
    b"", b"\x30\x00", b"\x30\x03\x02\x01\x00",  # empty, no counts, one count
    b"\x30\x08\x02\x01\x00\x02\x01\x00\x04\x00",  # no target choice (an octet string instead)
    b"\x30\x0b\x02\x01\x00\x02\x01\x13\xa0\x03\x04\x01a",  # byOffset holding an octet string
    b"\x30\x0b\x02\x01\xff\x02\x01\x00\xa0\x03\x02\x01\x01",  # a negative beforeCount
    b"\x30\x0c\x02\x01\x00\x02\x01\x00\x81\x02\xff\xfe\x04\x00\x00",  # invalid UTF-8, trailing junk
    _request(0, 9, 1, 0) + b"\x00",
])
def test_malformed_requests_are_protocol_errors(value: bytes):
    with pytest.raises(ldaperrors.LDAPProtocolError):
        controls.search_controls([(controls.VLV, True, value)])


def test_response_decodes_with_pyasn1():
    control = controls.vlv_response(VlvResult(51, 100000, 0, b"ctx-1"))
    oid_len = control[3]
    assert control[4:4 + oid_len] == controls.VLV_RESPONSE
    value = control[4 + oid_len + 2:]
    decoded, rest = decoder.decode(value, asn1Spec=Response())
    assert rest == b""
    assert (int(decoded["targetPosition"]), int(decoded["contentCount"]), int(decoded["virtualListViewResult"]),
            bytes(decoded["contextID"])) == (51, 100000, 0, b"ctx-1")
    bare = controls.vlv_response(VlvResult(0, 0, controls.SORT_CONTROL_MISSING))
    decoded, _ = decoder.decode(bare[4 + len(controls.VLV_RESPONSE) + 2:], asn1Spec=Response())
    assert int(decoded["virtualListViewResult"]) == 60 and not decoded["contextID"].isValue


@pytest.mark.parametrize("offset, client, count, target", [
    (1, 0, 500, 1),  # the first entry
    (500, 500, 500, 500), (7, 7, 500, 500),  # offset == contentCount: the last entry, whatever the estimate
    (51, 0, 500, 51), (51, 500, 500, 51),  # the client knows the count (or gives none): as asked
    (50, 100, 1000, 500), (3, 4, 10, 7),  # another estimate: scaled, Si = Sc * Ci / Cc
    (501, 0, 500, None), (5, 4, 500, None),  # past the end of the list, of the client's own count
    (1, 0, 0, 1), (2, 10, 1, 1),  # an empty list; a scaled target before the first entry
])
def test_target_by_offset(offset: int, client: int, count: int, target: int | None):
    assert target_by_offset(offset, client, count) == target


def test_window_is_clipped_to_the_list_and_the_cap():
    assert window(1, 0, 49, 100000, 1000) == (1, 50)
    assert window(3, 5, 2, 100000, 1000) == (1, 5)
    assert window(100001, 2, 5, 100000, 1000) == (99999, 100000)  # past every value: the last entries
    assert window(10, 0, 5000, 100000, 100) == (10, 109)
