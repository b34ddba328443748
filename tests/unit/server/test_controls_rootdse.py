"""Control values decode from raw bytes; the root DSE and subschema describe what is served."""

from __future__ import annotations

import pytest
from ldaptor.protocols.ldap import ldaperrors

from abook.directory.attributes import ATTRIBUTES
from abook.directory.api import SortKey
from abook.server import controls, encode, rootdse


def test_paged_and_sort_values():
    value = encode.tlv(0x30, encode.ber_int(100) + encode.octets(b"cookie"))
    assert controls.decode_paged(value) == (100, b"cookie")
    sort = encode.tlv(0x30, encode.tlv(0x30, encode.octets(b"sn") + b"\x81\x01\xff")
                      + encode.tlv(0x30, encode.octets(b"cn") + encode.octets(b"2.5.13.3", 0x80)))
    assert controls.decode_sort(sort) == (SortKey("sn", True), SortKey("cn", False, "2.5.13.3"))
    sc = controls.search_controls([(controls.PAGED, True, value), (controls.SORT_REQUEST, True, sort)])
    assert (sc.page_size, sc.cookie, sc.sort_critical) == (100, b"cookie", True)


def test_critical_unknown_controls_are_refused_and_bad_values_are_protocol_errors():
    unknown = b"1.3.6.1.4.1.4203.1.10.1"  # subentries: not served
    with pytest.raises(ldaperrors.LDAPUnavailableCriticalExtension):
        controls.search_controls([(unknown, True, b"0\x00")])
    assert controls.search_controls([(unknown, False, b"junk")]).page_size is None
    with pytest.raises(ldaperrors.LDAPProtocolError):  # VLV is understood: a bad value is an error
        controls.search_controls([(controls.VLV, False, b"junk")])
    with pytest.raises(ldaperrors.LDAPProtocolError):
        controls.search_controls([(controls.PAGED, False, b"\x30\x84\xff\xff\xff\xff")])


def test_subschema_describes_every_served_attribute():
    served = {a.lower() for pairs in ATTRIBUTES.values() for a, _ in pairs}
    described = {a.lower() for a in rootdse.ATTRIBUTE_TYPES}
    assert served <= described
    text = b"\n".join(dict(rootdse.subschema(()))["objectClasses"])
    assert b"NAME 'crmRecord'" in text and b"AUXILIARY MAY ( crmEntity $ crmId $" in text
    dse = dict(rootdse.root_dse("o=crm", True, ()))
    assert dse["namingContexts"] == [b"o=crm"]
    assert controls.SORT_REQUEST in dse["supportedControl"] and controls.VLV in dse["supportedControl"]
    assert rootdse.STARTTLS in dse["supportedExtension"] and rootdse.WHOAMI in dse["supportedExtension"]
    assert dict(rootdse.root_dse("o=crm", False, ["namingcontexts"])) == {"namingContexts": [b"o=crm"]}
