"""The fast encoder writes exactly the bytes ldaptor's pureber writes."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from ldaptor.protocols import pureldap

from abook.server import encode

names = st.text(st.characters(min_codepoint=48, max_codepoint=122), min_size=1, max_size=20)
values = st.binary(max_size=300)
attributes = st.lists(st.tuples(names, st.lists(values, max_size=4)), max_size=25)


@settings(max_examples=200, deadline=None)
@given(dn=st.text(max_size=200), attrs=attributes, msg_id=st.integers(1, 2**31 - 1))
def test_search_result_entry_is_byte_identical(dn, attrs, msg_id):
    ours = encode.message(msg_id, encode.EntryEncoder().entry(dn, attrs))
    theirs = pureldap.LDAPMessage(pureldap.LDAPSearchResultEntry(objectName=dn, attributes=attrs), id=msg_id).toWire()
    assert ours == theirs


@given(code=st.integers(0, 122), matched=st.text(max_size=300), message=st.text(max_size=300),
       msg_id=st.integers(1, 2**31 - 1))
def test_search_result_done_is_byte_identical(code, matched, message, msg_id):
    ours = encode.message(msg_id, encode.result(0x65, code, matched, message))
    theirs = pureldap.LDAPMessage(pureldap.LDAPSearchResultDone(resultCode=code, matchedDN=matched,
                                                                errorMessage=message), id=msg_id).toWire()
    assert ours == theirs


def test_response_controls_are_byte_identical():
    from abook.server import controls

    theirs = pureldap.LDAPMessage(pureldap.LDAPSearchResultDone(resultCode=0), id=3,
                                  controls=[(controls.PAGED, None, b"0\x05\x02\x01\x00\x04\x00")]).toWire()
    ours = encode.message(3, encode.result(0x65, 0), encode.controls([controls.paged_response(b"")]))
    assert ours == theirs


def test_encoded_entries_are_cached_by_value_so_changes_are_never_stale():
    from abook.directory.api import Entry

    encoder = encode.EntryEncoder(cache_size=2)
    a = Entry("uid=1,ou=Contacts,o=crm", (("cn", (b"Ann",)),))
    changed = Entry("uid=1,ou=Contacts,o=crm", (("cn", (b"Anne",)),))
    assert encoder.encoded(a) == encoder.entry(a.dn, a.attributes)
    assert encoder.encoded(Entry(a.dn, (("cn", (b"Ann",)),))) is encoder.encoded(a)  # an equal value hits
    assert encoder.encoded(changed) == encoder.entry(changed.dn, changed.attributes) != encoder.encoded(a)
    for i in range(10):
        encoder.encoded(Entry(f"uid={i}", ()))
    assert len(encoder._cache) <= 2


def test_unhashable_entries_are_encoded_without_the_cache():
    from abook.directory.api import Entry

    odd = Entry("uid=2,ou=Contacts,o=crm", [("cn", [b"Bo"])])  # type: ignore[arg-type]
    assert encode.EntryEncoder(cache_size=10).encoded(odd) == encode.EntryEncoder().entry(odd.dn, odd.attributes)


def test_the_entry_cache_is_bounded_in_bytes_and_names():
    from abook.directory.api import Entry

    encoder = encode.EntryEncoder(cache_size=1_000_000, cache_bytes=64_000)
    for i in range(2_000):
        entry = Entry(f"uid={i},ou=Contacts,o=crm", ((f"x-odd-{i}", (b"v" * 1_000,)),))
        assert encoder.encoded(entry) == encoder.entry(entry.dn, entry.attributes)
    assert 0 < encoder.cached_bytes <= 64_000
    assert encoder.cached_bytes == 2 * sum(len(op) for op in encoder._cache.values())
    assert len(encoder._names) <= encode.EntryEncoder.MAX_NAMES
    # an entry too large for a sixteenth of the budget is encoded, never cached
    huge = Entry("uid=big,ou=Contacts,o=crm", (("description", (b"d" * 10_000,)),))
    assert encoder.encoded(huge) == encoder.entry(huge.dn, huge.attributes) and huge not in encoder._cache
