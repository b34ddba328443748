"""The searches real mail clients send (docs/clients.md), answered as slapd would."""

from __future__ import annotations

from abook.directory.api import BASE, ONE_LEVEL
from tests.unit.directory.conftest import Searcher

TB_FIELDS = ("cn", "givenName", "sn", "mozillaNickname", "mail", "mozillaSecondEmail", "&description", "o", "ou",
             "title", "mozillaWorkUrl", "mozillaHomeUrl")


def thunderbird_search(word: str) -> str:
    terms = "".join(f"(&({f[1:]}=*{word}*))" if f.startswith("&") else f"({f}=*{word}*)" for f in TB_FIELDS)
    return f"(|{terms})"


def keys(search: Searcher, ids: set[str]) -> set[str]:
    by_id = {v: k for k, v in search.org.contacts.items()} | {v: k for k, v in search.org.accounts.items()}
    by_id |= {v: k for k, v in search.org.leads.items()} | {v: k for k, v in search.org.equipment.items()}
    by_id |= {v: "user:" + k for k, v in search.org.users.items()}
    return {by_id.get(i, i) for i in ids}


def test_thunderbird_autocomplete_and_address_book_search(search: Searcher) -> None:
    r = search("(|(cn=*rog*)(mail=*rog*)(givenName=*rog*)(sn=*rog*))", size_limit=100)
    assert keys(search, r.ids) == {"rogers", "lead2", "room"} and r.done.result_code == 0
    whitt = search(f"(&{thunderbird_search('whitt')})", base="ou=Contacts,o=crm", size_limit=100)
    assert keys(search, whitt.ids) == {"whitt"}
    two = search(f"(&{thunderbird_search('Walt')}{thunderbird_search('Procure')})", size_limit=100)
    assert keys(search, two.ids) == {"whitt"}
    acme = search(thunderbird_search("acme"), base="ou=Contacts,o=crm")  # o comes from the parent account
    assert keys(search, acme.ids) == {"rogers", "jane"}


def test_thunderbird_download_and_base_scope(search: Searcher) -> None:
    everything = search("(objectclass=*)", size_limit=0)
    assert len(everything.entries) == 26 and everything.done.result_code == 0
    r = search("(|(cn=*rog*)(mail=*rog*)(givenName=*rog*)(sn=*rog*))", base="ou=Contacts,o=crm", scope=BASE)
    assert r.dns == [] and r.done.result_code == 0


def test_evolution(search: Searcher) -> None:
    book = dict(base="ou=Contacts,o=crm", scope=ONE_LEVEL, size_limit=100)
    auto = search("(|(displayName=rog*)(mail=rog*)(displayName=*rog*)(mail=*rog*)(|(cn=rog*)(sn=rog*)))", **book)
    assert keys(search, auto.ids) == {"rogers"}
    any_field = ("(|(cn=*whitt*)(givenName=*whitt*)(sn=*whitt*)(mobile=*whitt*)(facsimileTelephoneNumber=*whitt*)"
                 "(internationaliSDNNumber=*whitt*)(pager=*whitt*)(o=*whitt*)(roomNumber=*whitt*)(title=*whitt*)"
                 "(labeledURI=*whitt*)(description=*whitt*)(icsCalendar=*whitt*))")
    assert keys(search, search(any_field, **book).ids) == {"whitt"}
    sender = search("(mail=jane.doe@example.com)", base="ou=Contacts,o=crm", scope=ONE_LEVEL, size_limit=1)
    assert keys(search, sender.ids) == {"jane"} and sender.done.result_code == 0
    cached, cookie, pages = [], b"", 0
    while True:
        r = search("(cn=*)", base="ou=Contacts,o=crm", scope=ONE_LEVEL, page_size=3, cookie=cookie)
        cached += r.dns
        pages += 1
        cookie = r.done.cookie
        if not cookie:
            break
    assert len(cached) == len(set(cached)) == 7 and pages == 3


def test_outlook(search: Searcher) -> None:
    r = search("(&(mail=*)(|(mail=jo*)(|(cn=jo*)(|(sn=jo*)(givenName=jo*)))))", size_limit=100, time_limit=60)
    assert keys(search, r.ids) == {"joe", "jojo", "user:bob"}  # Bob Jones


def test_apple_unserved_branch_is_undefined_not_an_error(search: Searcher) -> None:
    r = search("(|(cn=rog*)(telephoneNumber=foo*)(apple-imhandle=rog*))", base="")
    assert keys(search, r.ids) == {"rogers"} and r.done.result_code == 0
    assert search("(|(cn=rog*)(telephoneNumber=foo*))", base="o=crm").ids == r.ids
    assert search(base="", scope=ONE_LEVEL).dns == ["o=crm"]


def test_mutt_lbdb(search: Searcher) -> None:
    r = search("(|(givenname=jane)(sn=jane)(cn=jane)(mail=jane))", size_limit=0)
    assert keys(search, r.ids) == {"jane"}
    wild = search("(|(givenname=*rog*)(sn=*rog*)(cn=*rog*)(mail=*rog*))", size_limit=0)
    assert keys(search, wild.ids) == {"rogers", "lead2", "room"}
