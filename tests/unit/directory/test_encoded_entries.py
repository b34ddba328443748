"""The daemon's directory encodes record entries on its worker thread (``StoreDirectory(encode=True)``):
the bytes must be exactly what the server's encoder makes of the same entries as values, for every kind
of record, attribute selection, typesOnly and operational attributes, on both databases."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from abook.directory.entries import RowEncoder, selection, view
from abook.directory.search import StoreDirectory
from abook.server import encode
from tests.unit.directory.conftest import Searcher

SELECTIONS = [(), ("*",), ("*", "+"), ("+",), ("cn", "mail"), ("1.1",), ("CN", "objectclass", "crmId", "uid"),
              ("entryUUID", "modifyTimestamp", "sn"), ("mail", "crmEntity")]


@pytest.mark.parametrize("attributes", SELECTIONS)
@pytest.mark.parametrize("types_only", [False, True])
def test_encoded_records_are_the_entries_encoded(search: Searcher, attributes, types_only) -> None:
    encoded = Searcher(search.store, search.org)
    encoded.directory = StoreDirectory(search.store, search.directory.tree, encode=True)
    plain = search(attributes=attributes, types_only=types_only)
    fast = encoded(attributes=attributes, types_only=types_only)
    assert [e.dn for e in fast.entries] == plain.dns
    records = 0
    encoder = encode.EntryEncoder()
    for ours, theirs in zip(fast.entries, plain.entries):
        if ours.dn.startswith("uid="):
            records += 1
            assert ours.attributes == () and ours.ber == encoder.entry(theirs.dn, theirs.attributes)
        else:
            assert ours == theirs  # container entries stay values
    assert records >= 19


texts = st.one_of(st.none(), st.just(""), st.text(max_size=40), st.text(min_size=100, max_size=300))


@settings(max_examples=300, deadline=None)
@given(data=st.data(), entity=st.sampled_from(["contact", "account", "lead", "systemuser", "queue", "equipment"]),
       attributes=st.sampled_from(SELECTIONS))
def test_row_encoder_matches_the_generic_encoder(data, entity, attributes) -> None:
    """Any row (values absent, empty, short, long enough for long BER lengths, non-ASCII)."""
    v = view(entity)
    width = len(v.columns)
    row = [data.draw(st.uuids().map(str))]
    row += [data.draw(st.one_of(st.none(), st.just("2026-01-02 03:04:05"))) for _ in range(2)]
    row += [data.draw(texts) for _ in range(width - 3)]
    plan = v.plan(selection(attributes))
    dn_tail = ",ou=Books,o=crm"
    entry = v.make_entry("uid=" + row[0] + dn_tail, row, plan, False)
    assert RowEncoder(v, plan, dn_tail, False)(row) == encode.EntryEncoder().entry(entry.dn, entry.attributes)
