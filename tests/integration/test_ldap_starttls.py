"""StartTLS (RFC 4511 4.14, RFC 4513 3): nothing sent in the clear is ever acted on inside TLS.

The first test sends the exact bytes of the review's case F2 (issue 14, item 1): StartTLS, a bind and a
search in one segment. Before the fix the bind and search ran and were answered inside the TLS session,
with the injected identity (the CVE-2011-0411 class). Now the server ends the connection, in the clear,
before it answers the StartTLS: it never switches to TLS with injected requests pending.
"""

from __future__ import annotations

import pytest_twisted
from ldaptor.protocols import pureldap
from twisted.internet import defer, endpoints, reactor, ssl

from abook.server.framing import read_header
from tests.fixtures.ldap_server import RawClient, decode_messages, raw_connect, request

NOTICE = b"1.3.6.1.4.1.1466.20036"
STARTTLS_OID = b"1.3.6.1.4.1.1466.20037"
#: StartTLS (id 1) + bind alice/alice-demo (id 2) + search ou=Contacts,o=crm (id 3), one write (review F2)
STARTTLS_BIND_SEARCH = bytes.fromhex(
    "301d02010177188016312e332e362e312e342e312e313436362e3230303337"
    "301b02010260160201030405616c696365800a616c6963652d64656d6f"
    "3033020103632e04116f753d436f6e74616374732c6f3d63726d0a01020a010002010002010001010087046d61696c30040402636e"
)
#: StartTLS with message id 2 (review F1b)
STARTTLS_2 = bytes.fromhex("301d02010277188016312e332e362e312e342e312e313436362e3230303337")
WHOAMI = "1.3.6.1.4.1.4203.1.11.3"


def _within(d: defer.Deferred, seconds: float = 15) -> defer.Deferred:
    """``d``, or a TimeoutError after ``seconds`` (a server that switched to TLS would keep us waiting)."""
    return d.addTimeout(seconds, reactor)


def _client_tls(tmp_path) -> ssl.CertificateOptions:
    ca = ssl.Certificate.loadPEM((tmp_path / "cert.pem").read_bytes())
    return ssl.optionsForClientTLS("localhost", trustRoot=ca)


def _is_notice(msg) -> bool:
    return msg.id == 0 and isinstance(msg.value, pureldap.LDAPExtendedResponse) and msg.value.responseName == NOTICE


@pytest_twisted.ensureDeferred
async def test_requests_pipelined_after_starttls_are_never_run(ldap_server, tmp_path, capture_log_events):
    uid = ldap_server.add_user("alice", "alice-demo", "alice@example.com")
    await ldap_server.start(tls=True)
    c = await raw_connect(ldap_server.port)
    c.write(STARTTLS_BIND_SEARCH)
    got = await _within(c.lost)  # the server closes; the client never gets to start TLS
    msgs = decode_messages(got)
    # one message, in the clear: the Notice of Disconnection; no StartTLS response, no bind, no entries
    assert len(msgs) == 1 and _is_notice(msgs[0]) and msgs[0].value.resultCode == 2, msgs
    assert msgs[0].value.errorMessage == b"data received after a StartTLS request"
    tag, length, header = read_header(got, 0, len(got))
    assert header + length == len(got)  # nothing after it (no TLS record either)
    assert not [e for e in capture_log_events if "bind" in e.lower()]  # the bind was never looked at
    # the well-behaved client: StartTLS, wait for its answer, handshake, then bind inside TLS
    c = await raw_connect(ldap_server.port)
    c.write(STARTTLS_BIND_SEARCH[:31])
    (answer,) = await _within(c.responses(1))
    assert answer.id == 1 and answer.value.resultCode == 0 and answer.value.responseName == STARTTLS_OID
    c.data.clear()
    c.protocol.transport.startTLS(_client_tls(tmp_path))
    c.write(request(pureldap.LDAPExtendedRequest(requestName=WHOAMI), 4))
    (who,) = await _within(c.responses(1))
    assert who.id == 4 and (who.value.response or b"") == b""  # anonymous inside TLS
    c.data.clear()
    c.write(STARTTLS_BIND_SEARCH[31:60])  # bind alice (id 2), now inside TLS
    (bound,) = await _within(c.responses(1))
    assert bound.id == 2 and bound.value.resultCode == 0
    c.data.clear()
    c.write(request(pureldap.LDAPExtendedRequest(requestName=WHOAMI), 5))
    (who,) = await _within(c.responses(1))
    assert who.value.response == b"dn:" + ldap_server.user_dn(uid).encode()
    await c.close()


@pytest_twisted.ensureDeferred
async def test_a_partial_request_after_starttls_ends_the_connection_too(ldap_server):
    await ldap_server.start(tls=True)
    c = await raw_connect(ldap_server.port)
    c.write(STARTTLS_2 + STARTTLS_BIND_SEARCH[31:40])  # the first 9 bytes of the bind
    msgs = decode_messages(await _within(c.lost))
    assert len(msgs) == 1 and _is_notice(msgs[0]) and msgs[0].value.resultCode == 2


@pytest_twisted.ensureDeferred
async def test_starttls_on_ldaps_answers_operations_error(ldap_server, tmp_path):
    """RFC 4511 4.14.1: with TLS already in place, operationsError (1), not protocolError (review F1b)."""
    await ldap_server.start(tls=True)
    client = RawClient()
    endpoint = endpoints.SSL4ClientEndpoint(reactor, "127.0.0.1", ldap_server.tls_port, _client_tls(tmp_path))
    await endpoints.connectProtocol(endpoint, client.protocol)
    client.write(STARTTLS_2)
    (answer,) = await _within(client.responses(1))
    assert answer.id == 2 and answer.value.resultCode == 1
    assert answer.value.errorMessage == b"TLS is already established"
    # the connection goes on
    client.write(request(pureldap.LDAPExtendedRequest(requestName=WHOAMI), 3))
    msgs = await _within(client.responses(2))
    assert msgs[1].id == 3 and msgs[1].value.resultCode == 0
    await client.close()


@pytest_twisted.ensureDeferred
async def test_starttls_while_a_bind_is_in_progress_is_refused(ldap_server):
    """A bind in progress is an outstanding operation (RFC 4511 4.14.1): StartTLS is not queued behind it
    to run after it, it is answered operationsError at once, and the connection stays in the clear."""
    ldap_server.add_user("alice", "alice-demo", "alice@example.com")
    await ldap_server.start(tls=True)
    c = await raw_connect(ldap_server.port)
    c.write(STARTTLS_BIND_SEARCH[31:60] + STARTTLS_BIND_SEARCH[:31].replace(b"\x02\x01\x01", b"\x02\x01\x07", 1))
    msgs = await _within(c.responses(2))
    by_id = {m.id: m.value for m in msgs}
    assert by_id[7].resultCode == 1 and by_id[7].errorMessage == b"requests are outstanding"
    assert by_id[2].resultCode == 0  # the bind
    c.data.clear()
    c.write(request(pureldap.LDAPExtendedRequest(requestName=WHOAMI), 8))  # still plain LDAP
    (who,) = await _within(c.responses(1))
    assert who.id == 8 and who.value.response.startswith(b"dn:uid=")
    await c.close()
