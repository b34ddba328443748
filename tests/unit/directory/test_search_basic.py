"""Simple searches through IDirectory: contains, prefix, equality, on both databases."""

from __future__ import annotations

from tests.unit.directory.conftest import Searcher


def test_thunderbird_autocomplete_finds_contains_matches_across_books(search: Searcher) -> None:
    r = search("(|(cn=*rog*)(mail=*rog*)(givenName=*rog*)(sn=*rog*))")
    o = search.org
    assert r.ids == {o.contacts["rogers"], o.leads["lead2"], o.equipment["room"]}
    assert r.done.result_code == 0


def test_prefix_and_exact_mail(search: Searcher) -> None:
    o = search.org
    assert search("(cn=jo*)").ids == {o.contacts["joe"], o.contacts["jojo"]}
    assert search("(mail=JANE.doe@example.com)").ids == {o.contacts["jane"]}
