"""Strict input (issue 14, item 5): the review's exact bytes for cases A6, A8, A8b, A8c, D6 and E7.

Badly encoded messages (a negative message id, a BOOLEAN of two octets) end their connection with a
Notice of Disconnection (RFC 4511 4.1.1); well-encoded values out of their range (scope 99, a negative
timeLimit) are answered protocolError (2) and the connection goes on, as slapd does. None of them is an
internal error (80), none logs a traceback, and a flood of them costs the log far less than it costs the
sender. A NUL in a filter value matches literally and a forged paging cookie is refused (53), on SQLite
and on PostgreSQL, served by a real `abook serve`.
"""

from __future__ import annotations

import gc

import pytest_twisted
from ldaptor.protocols import pureldap

from abook.server import encode
from tests.fixtures.ldap_server import decode_messages, raw_connect
from tests.integration.test_ldap_e2e import PAGED, Daemon, Raw, _paged_cookie, _search, demo  # noqa: F401
from tests.integration.test_ldap_robustness import _still_serving

NOTICE = b"1.3.6.1.4.1.1466.20036"
NEGATIVE_IDS = {
    "-5": "300c0201fb600702010304008000",  # messageid_negative.bin
    "ff ff ff ff": "300f0204ffffffff600702010304008000",
    "80 00 00 00": "300f020480000000600702010304008000",
}
SCOPE_99 = "3025020103632004000a01630a0100020100020100010100870b6f626a656374436c6173733000"
BOOLEAN_TWO_OCTETS = "3026020103632104000a01000a010002010002010001020001870b6f626a656374436c6173733000"
#: search o=crm sub (objectClass=*) cn with timeLimit -1, no bind (A8b)
NEGATIVE_TIME_LIMIT = "302e020102632904056f3d63726d0a01020a01000201000201ff010100870b6f626a656374436c61737330040402636e"
BIND_ADMIN = "301b0201016016020103040561646d696e800a61646d696e2d64656d6f"
#: (cn=*\00*) as id 3 and (cn=*yz\00*) as id 2, base o=crm, scope sub, attribute cn (D6)
ANY_NUL = "302c020103632704056f3d63726d0a01020a0100020100020100010100a4090402636e300381010030040402636e"
ANY_YZ_NUL = "302e020102632904056f3d63726d0a01020a0100020100020100010100a40b0402636e30058103797a0030040402636e"
DONE_OK = b"\x65\x07\x0a\x01\x00\x04\x00\x04\x00"


def _notice(msgs: list) -> pureldap.LDAPExtendedResponse:
    assert msgs and msgs[-1].id == 0 and msgs[-1].value.responseName == NOTICE, msgs
    return msgs[-1].value


def _server(events: list[str]) -> list[str]:
    """The server's log lines (without the test clients' "Starting factory" lines)."""
    return [e for e in events if "factory" not in e.lower()]


def _log_bytes(events: list[str]) -> int:
    return sum(len(e) + 1 for e in _server(events))


@pytest_twisted.ensureDeferred
async def test_badly_encoded_messages_end_the_connection_with_a_notice(ldap_server, capture_log_events):
    await ldap_server.start()
    cases = {**{f"message id {k}": v for k, v in NEGATIVE_IDS.items()}, "BOOLEAN of two octets": BOOLEAN_TWO_OCTETS}
    for what, hex_ in cases.items():
        before = len(capture_log_events)
        c = await raw_connect(ldap_server.port)
        c.write(bytes.fromhex(hex_))
        msgs = decode_messages(await c.lost)
        assert len(msgs) == 1 and _notice(msgs).resultCode == 2, what  # no BindResponse echoing -5
        new = _server(capture_log_events[before:])
        assert len(new) == 1 and "ending connection from 127.0.0.1" in new[0], (what, new)
    await _still_serving(ldap_server.port)
    assert not [e for e in capture_log_events if "Traceback" in e]


@pytest_twisted.ensureDeferred
async def test_values_out_of_range_answer_protocol_error_and_the_connection_goes_on(ldap_server, capture_log_events):
    await ldap_server.start()
    c = await raw_connect(ldap_server.port)
    c.write(bytes.fromhex(SCOPE_99))
    (done,) = await c.responses(1)
    assert done.id == 3 and done.value.resultCode == 2 and done.value.errorMessage == b"unknown search scope"
    c.write(bytes.fromhex(NEGATIVE_TIME_LIMIT))
    msgs = await c.responses(2)
    assert msgs[1].id == 2 and msgs[1].value.resultCode == 2 and msgs[1].value.errorMessage == b"timeLimit out of range"
    negative_size = bytes.fromhex(NEGATIVE_TIME_LIMIT.replace("0201000201ff", "0201ff020100"))  # sizeLimit -1
    c.write(negative_size)
    msgs = await c.responses(3)
    assert msgs[2].value.resultCode == 2 and msgs[2].value.errorMessage == b"sizeLimit out of range"
    c.write(encode.message(4, encode.tlv(0x63, encode.octets(b"") + b"\x0a\x01\x00\x0a\x01\x07\x02\x01\x00\x02\x01\x00"
                                         b"\x01\x01\x00\x87\x0bobjectClass\x30\x00")))
    msgs = await c.responses(4)
    assert msgs[3].id == 4 and msgs[3].value.errorMessage == b"unknown derefAliases value"
    c.write(encode.message(5, encode.tlv(0x63, encode.octets(b"") + b"\x0a\x01\x00\x0a\x01\x00\x02\x01\x00\x02\x01\x00"
                                         b"\x01\x01\x00\x87\x0bobjectClass\x30\x00")))
    msgs = await c.responses(6)  # the root DSE and its SearchResultDone: the connection still serves
    assert msgs[-1].id == 5 and msgs[-1].value.resultCode == 0
    await c.close()
    gc.collect()  # an orphaned search Deferred would report 'Unhandled error in Deferred' now
    assert not [e for e in capture_log_events if "Traceback" in e or "Unhandled" in e or "failed" in e]


@pytest_twisted.ensureDeferred
async def test_a_flood_of_bad_requests_costs_the_log_little(ldap_server, capture_log_events):
    """Review A8c: 2,000 pipelined anonymous searches with timeLimit -1 (97,873 B) made 1.44 MB of log.
    Now they are answered protocolError and logged not at all; and 200 connections each ended by a
    malformed message log one short line each."""
    await ldap_server.start()
    before = _log_bytes(capture_log_events)
    c = await raw_connect(ldap_server.port)
    base = bytes.fromhex(NEGATIVE_TIME_LIMIT)
    flood = b"".join(base[:4] + bytes((i % 100 + 1,)) + base[5:] for i in range(2000))
    c.write(flood)
    msgs = await c.responses(2000)
    assert {m.value.resultCode for m in msgs} == {2}
    await c.close()
    flood_log = _log_bytes(capture_log_events) - before
    assert flood_log < len(flood) // 100, flood_log
    before = _log_bytes(capture_log_events)
    sent = 0
    for i in range(200):
        c = await raw_connect(ldap_server.port)
        data = bytes.fromhex(NEGATIVE_IDS["-5"] if i % 2 else BOOLEAN_TWO_OCTETS)
        c.write(data)
        sent += len(data)
        await c.lost
    lines = _server(capture_log_events)[-200:]
    assert all(line.startswith("ending connection from 127.0.0.1") and len(line) < 100 and "\n" not in line
               for line in lines), lines[:3]
    assert _log_bytes(capture_log_events) - before <= 200 * 100  # under 100 B per 14-38 B request


# -- on a real daemon, SQLite and PostgreSQL -------------------------------------------------------------


def _entries(msgs: list) -> list:
    return [m for m in msgs if isinstance(m.value, pureldap.LDAPSearchResultEntry)]


def test_a_nul_in_a_filter_value_matches_literally(demo: Daemon) -> None:  # noqa: F811
    """Review D6: (cn=*\\00*) matched every entry on SQLite and (cn=*yz\\00*) was an FTS5 error (80).
    No value of the demo data holds a NUL, so both match nothing, and their negations everything."""
    raw = Raw(demo)
    raw.sock.sendall(bytes.fromhex(BIND_ADMIN))
    assert raw.until_done(1)[-1].value.resultCode == 0
    for msg_id, hex_ in ((2, ANY_YZ_NUL), (3, ANY_NUL)):
        raw.sock.sendall(bytes.fromhex(hex_))
        msgs = raw.until_done(msg_id)
        assert msgs[-1].value.resultCode == 0 and _entries(msgs) == [], (msg_id, msgs[-1])
    everyone = raw_search(raw, 4, "(objectClass=*)")
    assert len(everyone) > 30
    for i, flt in enumerate(("(!(cn=*\\00*))", "(!(cn=*yz\\00*))", "(!(cn=Nancy Davolio\\00))", "(!(mail=\\00*))")):
        assert len(raw_search(raw, 5 + i, flt)) == len(everyone), flt
    for i, flt in enumerate(("(cn=Nancy Davolio\\00)", "(mail=\\00*)", "(telephoneNumber=*\\00*)")):
        assert raw_search(raw, 10 + i, flt) == [], flt
    # ordering: the value cut at the NUL orders the same (no stored value holds one)
    assert len(raw_search(raw, 20, "(cn>=Nancy\\00)")) == len(raw_search(raw, 21, "(&(cn>=Nancy)(!(cn=Nancy)))"))
    # a base DN naming a record id with a NUL: no such object, under its book (PostgreSQL: rc 80 before)
    raw.send(_search("uid=30000000-0000-4000-8000-000000000002\x00,ou=Users,o=crm", "(objectClass=*)"), 22)
    done = raw.until_done(22)[-1].value
    assert done.resultCode == 32 and done.matchedDN == b"ou=Users,o=crm", done
    raw.close()


def raw_search(raw: Raw, msg_id: int, flt: str) -> list:
    raw.send(_search("o=crm", flt, attrs=("cn",)), msg_id)
    msgs = raw.until_done(msg_id)
    assert msgs[-1].value.resultCode == 0, (flt, msgs[-1])
    return _entries(msgs)


def test_forged_paging_cookies_answer_53(demo: Daemon) -> None:  # noqa: F811
    """Review E7: alice's own cookie prefix (17 bytes: version and request hash) with a forged body."""
    raw = Raw(demo)
    assert raw.bind("alice", "alice-demo") == 0
    search = _search("o=crm", "(mail=*)")
    raw.send(search, 2, [(PAGED, False, _paged(5, b""))])
    first = raw.until_done(2)
    (control,) = [c for c in first[-1].controls if c[0] == PAGED.encode()]
    cookie = _paged_cookie(control[2])
    assert len(_entries(first)) == 5 and cookie
    forged = {
        "1e400": cookie[:17] + b"[1e400,null]",
        "nested 100,000 deep": cookie[:17] + b"[0," + b"[" * 100_000 + b"]" * 100_000 + b"]",
        "NUL in the cursor": cookie[:17] + b'[2,["\\u0000"]]',
        "an object as the cursor": cookie[:17] + b'[2,[{"a":1}]]',
    }
    for i, (what, body) in enumerate(forged.items()):
        raw.send(search, 3 + i, [(PAGED, False, _paged(5, body))])
        done = raw.until_done(3 + i)[-1]
        assert done.value.resultCode == 53, (what, done)
    # the genuine cookie still works
    raw.send(search, 9, [(PAGED, False, _paged(5, cookie))])
    assert len(_entries(raw.until_done(9))) == 5
    raw.close()


def _paged(size: int, cookie: bytes) -> bytes:
    return encode.tlv(0x30, encode.ber_int(size) + encode.octets(cookie))
