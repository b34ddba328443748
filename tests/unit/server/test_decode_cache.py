"""Repeated SearchRequests are decoded once; what the cache keys on is exactly the op's bytes."""

from __future__ import annotations

from ldaptor import ldapfilter
from ldaptor.protocols import pureldap

from abook.server.decode import filter_wire, search_op


def _pdu(msg_id: int, controls: list | None = None) -> bytes:
    flt = ldapfilter.parseFilter("(|(cn=an*)(mail=an*))")
    req = pureldap.LDAPSearchRequest(baseObject=b"o=crm", scope=2, filter=flt, attributes=[b"cn"], sizeLimit=50)
    return pureldap.LDAPMessage(req, id=msg_id, controls=controls).toWire()


def test_search_op_splits_off_the_message_id_and_finds_the_filter() -> None:
    a, b = _pdu(0x01000001), _pdu(7)
    id_a, start_a, end_a = search_op(a)
    id_b, start_b, end_b = search_op(b)
    assert (id_a, id_b) == (0x01000001, 7)
    assert a[start_a:end_a] == b[start_b:end_b]  # the same request under two ids: one cache key
    assert filter_wire(a[start_a:end_a]) == ldapfilter.parseFilter("(|(cn=an*)(mail=an*))").toWire()


def test_searches_with_controls_and_other_requests_are_not_cached() -> None:
    paged = _pdu(3, controls=[(b"1.2.840.113556.1.4.319", False, b"\x30\x05\x02\x01\x0a\x04\x00")])
    assert search_op(paged)[1] == -1
    bind = pureldap.LDAPMessage(pureldap.LDAPBindRequest(dn=b"bench", auth=b"secret"), id=2).toWire()
    assert search_op(bind)[1] == -1
