"""Virtual List View browsing (draft-ietf-ldapext-ldapv3-vlv-09 with RFC 2891 sort) against `abook serve`
on the demo organisation, on SQLite and on PostgreSQL (the ``demo`` fixture of test_ldap_e2e.py):
OpenLDAP's ldapsearch, ldap3, and the request shapes Roundcube and Outlook send.

Roundcube (Net_LDAP3, ``vlv`` on): a non-critical sort control on ``cn`` and a critical VLV control with
beforeCount 0, afterCount page size - 1, byOffset (page - 1) * page size + 1 with contentCount 0, or, when
searching, greaterThanOrEqual with the typed text; the filter is its listing filter. Outlook ("browsing
with VLV" on): a critical sort control on displayName and a critical VLV control, first byOffset 1/0,
then its scroll bar's offset with the contentCount of the previous response, and type-to-find with
greaterThanOrEqual; its filters always AND ``(mail=*)``.
"""

from __future__ import annotations

import os
import subprocess

import pytest
from ldaptor.protocols import pureber

from tests.integration.test_ldap_e2e import CONTACTS, LEADS, SEES, Daemon, Raw, _ldap3, _search, demo, user_dn  # noqa: F401

SORT = "1.2.840.113556.1.4.473"
VLV = "2.16.840.1.113730.3.4.9"
VLV_RESPONSE = "2.16.840.1.113730.3.4.10"

#: what alice (organisation-wide reader) sees in each book, sorted as the server sorts (folded cn)
ALL_CONTACTS = sorted(CONTACTS, key=str.lower)


# -- request values, built as each client builds them --------------------------------------------------


def _hex_int(n: int) -> str:
    """Net_LDAP3::_ber_encode_int: big-endian two's complement octets, in hex."""
    h = format(n, "x")
    if len(h) % 2:
        h = "0" + h
    if int(h[:2], 16) & 0x80:
        h = "00" + h
    return h


def _hex_seq(body: str, tag: str) -> str:
    """Net_LDAP3::_ber_addseq: tag, short or long length, body."""
    n = len(body) // 2
    length = format(n, "02x") if n < 128 else "8" + str(len(_hex_int(n)) // 2) + _hex_int(n)
    return tag + length + body


def roundcube_vlv(offset: int, page_size: int, search: str | None = None) -> bytes:
    """Net_LDAP3::_vlv_ber_encode, right to left: the target, afterCount page_size - 1, beforeCount 0."""
    if search:
        target = _hex_seq(search.encode().hex(), "81")
    else:
        target = _hex_seq(_hex_seq(_hex_int(offset), "02") + "020100", "a0")
    return bytes.fromhex(_hex_seq("020100" + _hex_seq(_hex_int(page_size - 1), "02") + target, "30"))


def roundcube_sort(*attrs: str) -> bytes:
    """Net_LDAP3::_sort_ber_encode: SEQUENCE OF SEQUENCE { attributeType }."""
    return bytes.fromhex(_hex_seq("".join(_hex_seq(_hex_seq(a.encode().hex(), "04"), "30") for a in attrs), "30"))


def vlv_by_offset(before: int, after: int, offset: int, count: int, context: bytes = b"") -> bytes:
    def i(n: int) -> bytes:
        return pureber.BERInteger(n).toWire()

    target = pureber.BERSequence([pureber.BERInteger(offset), pureber.BERInteger(count)], tag=0xA0).toWire()
    ctx = pureber.BEROctetString(context).toWire() if context else b""
    body = i(before) + i(after) + target + ctx
    return b"\x30" + pureber.int2berlen(len(body)) + body


def vlv_by_value(before: int, after: int, value: str) -> bytes:
    v = value.encode()
    body = pureber.BERInteger(before).toWire() + pureber.BERInteger(after).toWire() + b"\x81" + pureber.int2berlen(len(v)) + v
    return b"\x30" + pureber.int2berlen(len(body)) + body


def sort_value(attr: str) -> bytes:
    inner = pureber.BERSequence([pureber.BEROctetString(attr)]).toWire()
    return b"\x30" + pureber.int2berlen(len(inner)) + inner


def decode_vlv_response(value: bytes) -> tuple[int, int, int, bytes]:
    """(targetPosition, contentCount, virtualListViewResult, contextID)."""
    seq, _ = pureber.berDecodeObject(pureber.BERDecoderContext(), value)
    items = list(seq.data)
    context = items[3].value if len(items) > 3 else b""
    return items[0].value, items[1].value, items[2].value, context


# -- clients -----------------------------------------------------------------------------------------------


def browse(d: Daemon, user: str, base: str, filt: str, controls: list, attrs=("cn", "mail")):
    """One ldap3 search with ``controls`` [(oid, critical, value)]: (result code, cns, VLV response or None)."""
    from ldap3.protocol.controls import build_control

    conn = _ldap3(d, user_dn(user), f"{user}-demo")
    assert conn.bind(), conn.result
    conn.search(base, filt, attributes=list(attrs), controls=[build_control(o, c, v, False) for o, c, v in controls])
    result = conn.result
    names = [str(e.cn) for e in conn.entries]
    conn.unbind()
    ctl = (result.get("controls") or {}).get(VLV_RESPONSE)
    return result["result"], names, decode_vlv_response(ctl["value"]) if ctl else None


def raw_browse(d: Daemon, user: str, base: str, filt: str, controls: list) -> tuple[int, list, tuple | None]:
    """The same as ``browse`` in raw BER (ldap3 cannot decode result code 76)."""
    raw = Raw(d)
    assert raw.bind(user_dn(user), f"{user}-demo") == 0
    raw.send(_search(base, filt, attrs=("cn",)), 2, controls)
    msgs = raw.until_done(2)
    raw.close()
    done = msgs[-1]
    entries = [m for m in msgs[:-1] if m.id == 2]
    ctl = [v for oid, _c, v in (done.controls or ()) if oid in (VLV_RESPONSE, VLV_RESPONSE.encode())]
    return done.value.resultCode, entries, decode_vlv_response(ctl[0]) if ctl else None


def ldapsearch_vlv(d: Daemon, user: str, *args: str) -> tuple[list[str], str]:
    """OpenLDAP's ldapsearch (``-E sss=... -E vlv=...``): the cns of its first window and the comment it
    printed about the VLV response. (With VLV, ldapsearch asks on stdin for the next window; at the end of
    its input it keeps moving on until the server answers an error, so only the first window counts.)"""
    r = subprocess.run(["ldapsearch", "-x", "-H", d.url, "-LL", "-o", "ldif-wrap=no", "-D", user_dn(user), "-w",
                        f"{user}-demo", *args], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
                       env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    first = r.stdout.split("Press [")[0]
    names = [line[4:] for line in first.splitlines() if line.startswith("cn: ")]
    response = [line for line in first.splitlines() if line.startswith("# vlvResult")]
    assert response, (r.stdout, r.stderr)
    return names, response[0]


# -- tests -------------------------------------------------------------------------------------------------


def test_root_dse_advertises_sort_and_vlv(demo: Daemon) -> None:
    r = subprocess.run(["ldapsearch", "-x", "-H", demo.url, "-LLL", "-b", "", "-s", "base", "supportedControl"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"supportedControl: {SORT}" in r.stdout and f"supportedControl: {VLV}" in r.stdout


def test_roundcube_pages_through_contacts_by_offset(demo: Daemon) -> None:
    base, filt, page = "ou=Contacts,o=crm", "(objectClass=inetOrgPerson)", 5
    seen = []
    for n in (1, 2, 3):
        code, names, resp = browse(demo, "alice", base, filt, [(SORT, False, roundcube_sort("cn")),
                                                               (VLV, True, roundcube_vlv((n - 1) * page + 1, page))])
        assert code == 0, (n, code)
        target, count, result, context = resp
        assert (target, count, result) == ((n - 1) * page + 1, len(CONTACTS), 0)
        assert context  # the server names its list; a stateless one accepts any back
        seen += names
    assert seen == ALL_CONTACTS  # 13 contacts: pages of 5, 5 and 3, in order, each once


def test_roundcube_search_uses_greater_than_or_equal(demo: Daemon) -> None:
    code, names, resp = browse(demo, "alice", "ou=Contacts,o=crm", "(objectClass=inetOrgPerson)",
                               [(SORT, False, roundcube_sort("cn")), (VLV, True, roundcube_vlv(1, 3, "Ma"))])
    assert code == 0
    start = next(i for i, n in enumerate(ALL_CONTACTS) if n.lower() >= "ma")
    assert names == ALL_CONTACTS[start:start + 3]
    assert resp[:3] == (start + 1, len(CONTACTS), 0)
    # past every value: the target is contentCount + 1 and nothing follows it
    code, names, resp = browse(demo, "alice", "ou=Contacts,o=crm", "(objectClass=inetOrgPerson)",
                               [(SORT, False, roundcube_sort("cn")), (VLV, True, roundcube_vlv(1, 3, "zzz"))])
    assert code == 0 and names == [] and resp[:3] == (len(CONTACTS) + 1, len(CONTACTS), 0)


def test_outlook_browses_the_whole_tree_sorted_across_books(demo: Daemon) -> None:
    """Outlook's default base is namingContexts: every book, merged in displayName order."""
    everything = sorted((n for book in SEES["alice"].values() for n in book), key=str.lower)
    code, names, resp = browse(demo, "alice", "o=crm", "(mail=*)",
                               [(SORT, True, sort_value("displayName")), (VLV, True, vlv_by_offset(0, 9, 1, 0))])
    assert code == 0 and names == everything[:10]
    target, count, result, context = resp
    assert (target, count, result) == (1, len(everything), 0)
    # the scroll bar at 3/4 of the client's idea of the list (twice the server's): the draft's scaling
    code, names, resp = browse(demo, "alice", "o=crm", "(mail=*)",
                               [(SORT, True, sort_value("displayName")),
                                (VLV, True, vlv_by_offset(1, 2, 3 * count // 2, 2 * count, context))])
    scaled = count * (3 * count // 2) // (2 * count)
    assert code == 0 and resp[:3] == (scaled, count, 0)
    assert names == everything[scaled - 2:scaled + 2]
    # type-to-find "k": one before, the target, four after
    code, names, resp = browse(demo, "alice", "o=crm", "(mail=*)",
                               [(SORT, True, sort_value("displayName")), (VLV, True, vlv_by_value(1, 4, "k"))])
    start = next(i for i, n in enumerate(everything) if n.lower() >= "k")
    assert code == 0 and resp[:3] == (start + 1, count, 0)
    assert names == everything[start - 1:start + 5]
    # the last entry: offset == contentCount
    code, names, resp = browse(demo, "alice", "o=crm", "(mail=*)",
                               [(SORT, True, sort_value("displayName")), (VLV, True, vlv_by_offset(2, 0, count, count))])
    assert code == 0 and names == everything[-3:] and resp[:3] == (count, count, 0)


def test_each_user_browses_only_what_they_may_see(demo: Daemon) -> None:
    for user in ("bob", "carol", "dave"):
        visible = sorted(SEES[user].get("Contacts", {}), key=str.lower)
        code, names, resp = browse(demo, user, "ou=Contacts,o=crm", "(objectClass=inetOrgPerson)",
                                   [(SORT, False, roundcube_sort("cn")), (VLV, True, roundcube_vlv(1, 50))])
        assert code == 0, user
        assert names == visible and resp[1] == len(visible), user  # the smaller contentCount
        everything = sorted((n for book in SEES[user].values() for n in book), key=str.lower)
        code, names, resp = browse(demo, user, "o=crm", "(mail=*)",
                                   [(SORT, True, sort_value("cn")), (VLV, True, vlv_by_offset(0, 49, 1, 0))])
        assert code == 0 and names == everything and resp[1] == len(everything), user


def test_ldapsearch_vlv_and_sss(demo: Daemon) -> None:
    by_sn = sorted(LEADS, key=lambda n: n.split()[-1].lower())
    names, response = ldapsearch_vlv(demo, "alice", "-b", "ou=Leads,o=crm", "-E", "!sss=sn", "-E", "!vlv=1/1/2/0",
                                     "(cn=*)", "cn", "sn")
    assert names == by_sn[0:3]
    assert response.startswith(f"# vlvResultpos=2 count={len(LEADS)} context=") and response.endswith("(0) Success")
    # reverse order, by value: the first entry at or after "j" walking sn downwards
    names, response = ldapsearch_vlv(demo, "alice", "-b", "ou=Leads,o=crm", "-E", "!sss=-sn", "-E", "!vlv=0/1:j",
                                     "(cn=*)", "cn")
    down = list(reversed(by_sn))
    start = next(i for i, n in enumerate(down) if n.split()[-1].lower() <= "j")
    assert names == down[start:start + 2]
    assert response.startswith(f"# vlvResultpos={start + 1} count={len(LEADS)} ")


@pytest.mark.parametrize("controls, code, vlv_result", [
    # VLV without a sort control: virtualListViewError, sortControlMissing
    ([(VLV, True, vlv_by_offset(0, 9, 1, 0))], 76, 60),
    # an offset past the end of a list the client does not know: offsetRangeError
    ([(SORT, False, sort_value("cn")), (VLV, True, vlv_by_offset(0, 9, 99, 0))], 76, 61),
    # an offset larger than the client's own count
    ([(SORT, False, sort_value("cn")), (VLV, True, vlv_by_offset(0, 9, 5, 4))], 76, 61),
    # a sort the server cannot do: critical -> unavailableCriticalExtension (RFC 2891), no list to view
    ([(SORT, True, sort_value("x-unknown")), (VLV, True, vlv_by_offset(0, 9, 1, 0))], 12, 53),
    # not critical -> the VLV cannot be served
    ([(SORT, False, sort_value("x-unknown")), (VLV, True, vlv_by_offset(0, 9, 1, 0))], 76, 53),
])
def test_vlv_errors(demo: Daemon, controls: list, code: int, vlv_result: int) -> None:
    got, names, resp = raw_browse(demo, "alice", "ou=Contacts,o=crm", "(cn=*)", controls)
    assert (got, names) == (code, [])
    assert resp is not None and resp[2] == vlv_result


def test_vlv_with_paged_results_is_refused(demo: Daemon) -> None:
    paged = b"\x30\x05\x02\x01\x05\x04\x00"
    got, names, _ = raw_browse(demo, "alice", "ou=Contacts,o=crm", "(cn=*)",
                           [(SORT, False, sort_value("cn")), (VLV, True, vlv_by_offset(0, 9, 1, 0)),
                            ("1.2.840.113556.1.4.319", False, paged)])
    assert (got, names) == (53, [])


def test_a_failed_vlv_search_still_carries_the_response_control(demo: Daemon) -> None:
    got, names, resp = raw_browse(demo, "alice", "ou=Nowhere,o=crm", "(cn=*)",
                                  [(SORT, False, sort_value("cn")), (VLV, True, vlv_by_offset(0, 9, 1, 0))])
    assert (got, names) == (32, [])  # noSuchObject
    assert resp is not None and resp[2] == 80  # other: the draft names no such result
