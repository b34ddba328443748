"""Real clients against abook's LDAP server on 127.0.0.1: ldapsearch, ldap3, and each client style of
CLIENTS.md (Thunderbird, Evolution, Outlook, mutt), paging, sorting, limits, Abandon."""

from __future__ import annotations

import pytest_twisted
from ldaptor.protocols import pureldap
from twisted.internet import threads

from abook.server import encode
from tests.fixtures.ldap_server import decode_messages, raw_connect, request, run_tool

PAGED = "1.2.840.113556.1.4.319"
SORT = "1.2.840.113556.1.4.473"
VLV = "2.16.840.1.113730.3.4.9"


def _ldap3(port: int, user: str | None = None, password: str | None = None):
    import ldap3

    server = ldap3.Server("127.0.0.1", port=port, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=user, password=password, raise_exceptions=False)


def _paged_value(size: int, cookie: bytes = b"") -> bytes:
    return encode.tlv(0x30, encode.ber_int(size) + encode.octets(cookie))


def _search(base: str, filt: str, scope: int = 2, size: int = 0, time: int = 0, attrs=()) -> pureldap.LDAPSearchRequest:
    from ldaptor import ldapfilter

    return pureldap.LDAPSearchRequest(baseObject=base, scope=scope, sizeLimit=size, timeLimit=time,
                                      filter=ldapfilter.parseFilter(filt), attributes=list(attrs))


@pytest_twisted.ensureDeferred
async def test_thunderbird_connection_per_keystroke(ldap_server):
    uid = ldap_server.add_user("jane.doe", "s3cret!", "jane.doe@example.com")
    await ldap_server.start()
    dn = ldap_server.user_dn(uid)

    def type_ahead(fragment: str) -> tuple[bool, int, int]:
        conn = _ldap3(ldap_server.port, dn, "s3cret!")
        bound = conn.bind()
        conn.search("ou=Contacts,o=crm", f"(|(cn=*{fragment}*)(mail=*{fragment}*)(givenName=*{fragment}*)(sn=*{fragment}*))",
                    size_limit=100, attributes=["*"])
        n, code = len(conn.entries), conn.result["result"]
        conn.unbind()
        return bound, n, code

    for fragment in ("r", "ro", "rog"):
        bound, n, code = await threads.deferToThread(type_ahead, fragment)
        assert bound
        assert n > 0 and code in (0, 4)
    # the connections are gone once each client unbound
    assert ldap_server.factory.connections == set() or len(ldap_server.factory.connections) <= 1
    # Thunderbird's "*rog**" template: an empty substring component matches like *rog*
    c = await raw_connect(ldap_server.port)
    c.write(request(pureldap.LDAPBindRequest(dn=dn, auth="s3cret!"), 1))
    rog = pureldap.LDAPFilter_substrings(type="cn", substrings=[pureldap.LDAPFilter_substrings_any("rog"),
                                                                pureldap.LDAPFilter_substrings_any("")])
    c.write(request(pureldap.LDAPSearchRequest(baseObject="ou=Contacts,o=crm", sizeLimit=100, filter=rog), 2))
    msgs = await c.until(lambda d: any(isinstance(m.value, pureldap.LDAPSearchResultDone)
                                       for m in decode_messages(bytes(d))))
    msgs = decode_messages(msgs)
    assert [m.value.resultCode for m in (msgs[0], msgs[-1])] == [0, 0], msgs
    assert sum(isinstance(m.value, pureldap.LDAPSearchResultEntry) for m in msgs) == 84
    await c.close()


@pytest_twisted.ensureDeferred
async def test_evolution_session(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"])
    c = await raw_connect(ldap_server.port)
    c.write(request(_search("", "(objectclass=*)", scope=0, time=30, attrs=[
        "supportedControl", "supportedExtension", "supportedFeatures", "supportedLDAPVersion", "subschemaSubentry",
        "schemaNamingContext"]), 1))
    msgs = await c.responses(2)
    entry, done = msgs[0].value, msgs[1].value
    assert done.resultCode == 0
    got = {k.decode(): v for k, v in entry.attributes}
    assert got["subschemaSubentry"] == [b"cn=Subschema"]
    assert PAGED.encode() in got["supportedControl"] and b"3" in got["supportedLDAPVersion"]
    assert "namingContexts" not in got  # only what was asked for

    c.write(request(_search("cn=Subschema", "(objectClass=subschema)", scope=0, attrs=["objectClasses"]), 2))
    msgs = await c.responses(4)
    classes = dict(msgs[2].value.attributes)[b"objectClasses"]
    assert any(b"NAME 'inetOrgPerson'" in oc for oc in classes)
    assert any(b"NAME 'crmRecord'" in oc and b"AUXILIARY" in oc for oc in classes)

    # one-level autocomplete, then Abandon for that id (no answer), then the paged offline download
    c.write(request(_search("ou=Contacts,o=crm", "(|(displayName=rog*)(mail=rog*)(displayName=*rog*)(mail=*rog*)"
                            "(|(cn=rog*)(sn=rog*)))", scope=1, size=100), 3))
    msgs = await c.until(lambda d: any(m.id == 3 and isinstance(m.value, pureldap.LDAPSearchResultDone)
                                       for m in decode_messages(bytes(d))))
    c.write(request(pureldap.LDAPAbandonRequest(id=3), 4))
    cookie, seen, msg_id = b"", 0, 5
    while True:
        c.data.clear()
        c.write(request(_search("ou=Contacts,o=crm", "(cn=*)", scope=1), msg_id,
                        [(PAGED, False, _paged_value(100, cookie))]))
        msgs = await c.until(lambda d: any(isinstance(m.value, pureldap.LDAPSearchResultDone)
                                           for m in decode_messages(bytes(d))))
        msgs = decode_messages(msgs)
        assert all(m.id == msg_id for m in msgs), "the Abandon was answered"
        seen += sum(isinstance(m.value, pureldap.LDAPSearchResultEntry) for m in msgs)
        done = msgs[-1]
        assert done.value.resultCode == 0
        (oid, _crit, value), = done.controls
        assert oid == PAGED.encode()
        cookie = value[value.index(b"\x04", 3) + 2:]
        msg_id += 1
        if not cookie:
            break
    assert seen == 250 and msg_id == 8
    c.write(request(pureldap.LDAPUnbindRequest(), msg_id))
    await c.lost


@pytest_twisted.ensureDeferred
async def test_outlook_upn_bind_and_critical_vlv(ldap_server):
    ldap_server.add_user("CORP\\jdoe", "pw-outlook", "jane.doe@example.com")
    await ldap_server.start()

    def outlook() -> tuple:
        conn = _ldap3(ldap_server.port, "Jane.Doe@Example.com", "pw-outlook")
        bound = conn.bind()
        from ldap3.protocol.controls import build_control

        sort_value = encode.tlv(0x30, encode.tlv(0x30, encode.octets(b"cn")))
        conn.search("o=crm", "(&(mail=*)(|(mail=p00*)(|(cn=p00*)(|(sn=p00*)(givenName=p00*)))))", size_limit=100,
                    time_limit=60, controls=[build_control(SORT, False, sort_value, False),
                                             build_control(VLV, True, b"0\x0b\x02\x01\x00\x02\x01\x13\xa0\x03\x04\x01a", False)])
        vlv = conn.result["result"]
        conn.search("o=crm", "(&(mail=*)(|(mail=p00*)(cn=p00*)))", size_limit=100, attributes=["cn", "mail"],
                    controls=[build_control(SORT, True, sort_value, False)])
        sorted_result = (conn.result["result"], [str(e.cn) for e in conn.entries], conn.result.get("controls", {}))
        wrong = _ldap3(ldap_server.port, "jane.doe@example.com", "nope")
        return bound, vlv, sorted_result, wrong.bind(), wrong.result["result"]

    bound, vlv, (code, names, controls), wrong_bound, wrong_code = await threads.deferToThread(outlook)
    assert bound
    assert vlv == 2  # a byOffset target holding an octet string: VLV is understood, so a malformed value is an error
    assert code == 0 and names == sorted(names, key=str.lower) and len(names) == 100
    assert controls["1.2.840.113556.1.4.474"]["value"] == b"0\x03\x0a\x01\x00"  # sortResult success
    assert not wrong_bound and wrong_code == 49


@pytest_twisted.ensureDeferred
async def test_mutt_lowercase_attributes_and_undefined_branches(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"])
    url = f"ldap://127.0.0.1:{ldap_server.port}"
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "o=crm", "-z", "0", "-LLL",
                                    "(|(givenname=anna0001)(sn=peacock)(cn=peacock)(mail=peacock)(roomNumber=1))")
    assert code == 0, err
    assert out.count("dn: ") == 1 and "mail: p0001@example.com" in out
    # Apple: from the root, an OR over attributes some of which are not served
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "", "-s", "sub", "-LLL",
                                    "(|(cn=anna0002*)(telephoneNumber=anna0002*)(homeDirectory=x))", "cn")
    assert code == 0, err
    assert out.count("dn: ") == 1 and "cn: Anna0002 Whittaker" in out


@pytest_twisted.ensureDeferred
async def test_paged_download_of_a_whole_book_with_ldapsearch(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"])
    out, err, code = await run_tool("ldapsearch", "-x", "-H", f"ldap://127.0.0.1:{ldap_server.port}", "-b",
                                    "ou=Contacts,o=crm", "-E", "pr=40/noprompt", "-LLL", "(objectClass=*)", "1.1")
    assert code == 0, err
    assert out.count("dn: uid=") == 250
    assert [s.page_size for s in ldap_server.directory.searches] == [40] * 7


@pytest_twisted.ensureDeferred
async def test_size_and_time_limits(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"], limits={"size_limit": 30, "time_limit": 0.3})
    url = f"ldap://127.0.0.1:{ldap_server.port}"
    # the server's limit is smaller than the client's: 30 entries, then sizeLimitExceeded
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "o=crm", "-z", "100", "-LLL", "(mail=*)", "1.1")
    assert code == 4 and out.count("dn: ") == 30
    # the client's is smaller
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "o=crm", "-z", "7", "-LLL", "(mail=*)", "1.1")
    assert code == 4 and out.count("dn: ") == 7
    # a search the directory cannot finish in time is cancelled and answered timeLimitExceeded
    ldap_server.directory.hold()
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "o=crm", "-LLL", "(mail=*)", "1.1")
    assert code == 3, (out, err)
    assert ldap_server.directory.cancelled == 1
    ldap_server.directory.release()


@pytest_twisted.ensureDeferred
async def test_writes_are_refused_and_compare_works(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"])
    c = await raw_connect(ldap_server.port)
    dn = "uid=c0001,ou=Contacts,o=crm"
    c.write(request(pureldap.LDAPDelRequest(entry=dn), 1))
    c.write(request(pureldap.LDAPModifyDNRequest(entry=dn, newrdn="uid=x", deleteoldrdn=True), 2))
    c.write(request(pureldap.LDAPAddRequest(entry="uid=n,ou=Contacts,o=crm", attributes=[
        (pureldap.LDAPAttributeDescription("cn"), pureldap.BERSet([pureldap.LDAPAttributeValue("n")]))]), 3))
    c.write(request(pureldap.LDAPCompareRequest(entry=dn, ava=pureldap.LDAPAttributeValueAssertion(
        pureldap.LDAPAttributeDescription("mail"), pureldap.LDAPAssertionValue("P0001@example.com"))), 4))
    c.write(request(pureldap.LDAPCompareRequest(entry=dn, ava=pureldap.LDAPAttributeValueAssertion(
        pureldap.LDAPAttributeDescription("mail"), pureldap.LDAPAssertionValue("other@example.com"))), 5))
    msgs = {m.id: m.value for m in await c.responses(5)}
    assert [msgs[i].resultCode for i in (1, 2, 3)] == [53, 53, 53]
    assert isinstance(msgs[1], pureldap.LDAPDelResponse) and isinstance(msgs[3], pureldap.LDAPAddResponse)
    assert msgs[4].resultCode == 6 and msgs[5].resultCode == 5
    assert len(ldap_server.directory.entries) == 257
    await c.close()


@pytest_twisted.ensureDeferred
async def test_outstanding_limit_and_noncritical_unknown_controls(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"], limits={"max_outstanding": 2})
    ldap_server.directory.hold()
    c = await raw_connect(ldap_server.port)
    for i in (1, 2, 3):
        c.write(request(_search("o=crm", "(mail=*)", size=1), i, [("1.2.3.4.5", False, b"x")]))
    (busy,) = await c.responses(1)
    assert busy.id == 3 and busy.value.resultCode == 51
    ldap_server.directory.release()
    msgs = await c.responses(5)
    done = [m for m in msgs if isinstance(m.value, pureldap.LDAPSearchResultDone)]
    assert sorted((m.id, m.value.resultCode) for m in done) == [(1, 4), (2, 4), (3, 51)]
    await c.close()


@pytest_twisted.ensureDeferred
async def test_paged_size_zero_answers_a_well_formed_control(ldap_server):
    """RFC 2696: a page size of 0 abandons the paged search; the answer's control sits in [0] Controls."""
    await ldap_server.start(anonymous_books=["Contacts"])
    c = await raw_connect(ldap_server.port)
    c.write(request(_search("ou=Contacts,o=crm", "(cn=*)"), 2, [(PAGED, False, _paged_value(0, b"cookie"))]))
    msgs = await c.responses(1)
    assert msgs[-1].value.resultCode == 0
    assert msgs[-1].controls == [(PAGED.encode(), None, _paged_value(0))]
    await c.close()
