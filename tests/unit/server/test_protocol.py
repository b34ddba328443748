"""The LDAP connection without a socket: ``AbookLDAPServer`` on a ``StringTransport`` and a fake clock,
over the in-memory directory and an authenticator that knows one password. Bytes in, bytes out, as
ldaptor's ``test_server.py`` does: requests are built with ldaptor's ``pureldap`` and what the server
wrote is decoded back into LDAP messages, which is all a client sees."""

from __future__ import annotations

from typing import Any

import pytest
from ldaptor.protocols import pureber, pureldap
from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from twisted.internet.address import IPv4Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer
from zope.interface.verify import verifyObject

from abook.config.model import LdapConfig, LdapLimits
from abook.directory.api import BoundIdentity, IAuthenticator
from abook.server.encode import NOTICE_OF_DISCONNECTION
from abook.server.service import LDAPServerFactory
from abook.store.records import Principal
from tests.fakes.directory import MemoryDirectory, containers, person

ALICE_DN = "uid=alice,ou=Users,o=crm"
PEER = IPv4Address("TCP", "192.0.2.7", 50123)


@implementer(IAuthenticator)
class OnePassword:
    """Accepts alice with "s3cret"; anyone else gets invalidCredentials."""

    def __init__(self) -> None:
        self.attempts: list[tuple[str, str]] = []

    def authenticate(self, name: str, password: str, source: str) -> defer.Deferred:
        self.attempts.append((name, source))
        if name == ALICE_DN and password == "s3cret":
            principal = Principal(user_id="u-alice", business_unit_id="bu-1", depths={}, bu_subtree=frozenset())
            return defer.succeed(BoundIdentity(dn=ALICE_DN, user_id="u-alice", principal=principal))
        return defer.fail(ldaperrors.LDAPInvalidCredentials("invalid credentials"))


class Client:
    """One connection as a client sees it: what it sends, what comes back, whether it was closed."""

    def __init__(self, **limits: Any) -> None:
        self.clock = Clock()
        self.directory = MemoryDirectory(
            containers() + [person("Contacts", "c1", "Ann Archer", "ann@example.com"),
                            person("Contacts", "c2", "Bob Baker", "bob@example.com")],
            self.clock)
        self.auth = OnePassword()
        config = LdapConfig(limits=LdapLimits(**limits))
        self.factory = LDAPServerFactory(config, self.directory, self.auth, self.clock)
        self.server = self.factory.buildProtocol(PEER)
        self.transport = StringTransport(peerAddress=PEER)
        self.server.makeConnection(self.transport)
        self._decoder = self.server.berdecoder

    def send(self, msg_id: int, op: Any, controls: Any = None) -> None:
        self.send_bytes(pureldap.LDAPMessage(id=msg_id, value=op, controls=controls).toWire())

    def send_bytes(self, data: bytes) -> None:
        self.server.dataReceived(data)

    def received(self) -> list[Any]:
        """The LDAP messages written since the last call, decoded."""
        data = self.transport.value()
        self.transport.clear()
        out = []
        while data:
            msg, used = pureber.berDecodeObject(self._decoder, data)
            assert msg is not None, f"undecodable response bytes {data!r}"
            out.append(msg)
            data = data[used:]
        return out

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting

    def bind(self, msg_id: int = 1) -> None:
        self.send(msg_id, pureldap.LDAPBindRequest(dn=ALICE_DN.encode(), auth=b"s3cret"))
        [answer] = self.received()
        assert answer.value.resultCode == 0


def _search(base: str = "ou=Contacts,o=crm", **kw: Any) -> pureldap.LDAPSearchRequest:
    kw.setdefault("filter", pureldap.LDAPFilter_present("objectClass"))
    return pureldap.LDAPSearchRequest(baseObject=base.encode(), scope=kw.pop("scope", 1), **kw)


def _attrs(entry: pureldap.LDAPSearchResultEntry) -> dict[str, list[bytes]]:
    return {(k.decode() if isinstance(k, bytes) else k): list(v) for k, v in entry.attributes}


def test_the_fake_authenticator_provides_the_interface() -> None:
    assert verifyObject(IAuthenticator, OnePassword())


def test_a_bind_succeeds_and_a_wrong_password_is_invalid_credentials() -> None:
    c = Client()
    c.send(1, pureldap.LDAPBindRequest(dn=ALICE_DN.encode(), auth=b"s3cret"))
    [ok] = c.received()
    assert (ok.id, type(ok.value), ok.value.resultCode) == (1, pureldap.LDAPBindResponse, 0)
    c.send(2, pureldap.LDAPBindRequest(dn=ALICE_DN.encode(), auth=b"wrong"))
    [bad] = c.received()
    assert (bad.id, type(bad.value)) == (2, pureldap.LDAPBindResponse)
    assert bad.value.resultCode == ldaperrors.LDAPInvalidCredentials.resultCode
    assert c.auth.attempts == [(ALICE_DN, "192.0.2.7")] * 2  # the client's address reaches the check
    assert not c.closed


def test_a_search_sends_its_entries_then_search_result_done() -> None:
    c = Client()
    c.bind()
    c.send(2, _search(attributes=[b"cn", b"mail"]))
    assert c.received() == []  # the directory answers on a later reactor turn
    c.clock.advance(0)
    c.clock.advance(0)
    *entries, done = c.received()
    assert [m.id for m in entries + [done]] == [2, 2, 2]
    assert [type(m.value) for m in entries] == [pureldap.LDAPSearchResultEntry] * 2
    assert sorted(e.value.objectName for e in entries) == [b"uid=c1,ou=Contacts,o=crm", b"uid=c2,ou=Contacts,o=crm"]
    assert _attrs(entries[0].value) == {"cn": [b"Ann Archer"], "mail": [b"ann@example.com"]}
    assert type(done.value) is pureldap.LDAPSearchResultDone
    assert done.value.resultCode == 0


def test_a_search_below_a_missing_base_is_no_such_object() -> None:
    c = Client()
    c.bind()
    c.send(2, _search(base="ou=Nowhere,o=crm"))
    c.clock.advance(0)
    [done] = c.received()
    assert type(done.value) is pureldap.LDAPSearchResultDone
    assert done.value.resultCode == ldaperrors.LDAPNoSuchObject.resultCode


def test_unbind_closes_without_an_answer() -> None:
    c = Client()
    c.bind()
    c.send(2, pureldap.LDAPUnbindRequest())
    assert c.received() == []
    assert c.closed
    c.send(3, _search())  # nothing after an unbind is answered
    c.clock.advance(0)
    assert c.received() == []


@pytest.mark.parametrize("pdu", [
    b"\x30\x06\x02\x01\x01\x7f\x01\x00",  # an LDAPMessage whose op has an unknown tag
    b"\x04\x03abc",  # not an LDAPMessage at all
])
def test_a_malformed_pdu_ends_the_connection_with_a_notice_of_disconnection(pdu: bytes) -> None:
    c = Client()
    c.bind()
    c.send_bytes(pdu)
    [notice] = c.received()
    assert notice.id == 0
    assert type(notice.value) is pureldap.LDAPExtendedResponse
    assert notice.value.responseName == NOTICE_OF_DISCONNECTION
    assert notice.value.resultCode == ldaperrors.LDAPProtocolError.resultCode
    assert c.closed
    c.send(2, _search())  # later input is ignored
    c.clock.advance(0)
    assert c.received() == []


def test_an_abandoned_search_sends_nothing_more_and_the_connection_goes_on() -> None:
    c = Client()
    c.bind()
    c.directory.hold()  # the search waits at its start, like a slow database
    c.send(2, _search())
    c.send(3, pureldap.LDAPAbandonRequest(id=2))
    assert c.directory.cancelled == 1
    c.directory.release()
    c.clock.advance(0)
    assert c.received() == []  # neither entries nor a SearchResultDone for the abandoned search
    c.send(4, _search(base="o=crm", scope=0))  # the connection still answers
    c.clock.advance(0)
    [entry, done] = c.received()
    assert (entry.id, entry.value.objectName, done.id, done.value.resultCode) == (4, b"o=crm", 4, 0)
    assert not c.closed


def test_a_request_not_completed_within_the_pdu_deadline_closes_the_connection() -> None:
    c = Client(pdu_timeout=30.0, idle_timeout=3600.0)
    c.bind()
    wire = pureldap.LDAPMessage(id=2, value=_search()).toWire()
    c.send_bytes(wire[:5])
    c.clock.advance(20)
    c.send_bytes(wire[5:9])  # trickling bytes do not restart the deadline
    c.clock.advance(9.9)
    assert not c.closed
    c.clock.advance(0.2)
    assert c.closed
    assert c.received() == []  # closed without an answer to the unfinished request


def test_a_request_completed_within_the_pdu_deadline_is_answered() -> None:
    c = Client(pdu_timeout=30.0, idle_timeout=3600.0)
    c.bind()
    wire = pureldap.LDAPMessage(id=2, value=_search(base="o=crm", scope=0)).toWire()
    c.send_bytes(wire[:5])
    c.clock.advance(29)
    c.send_bytes(wire[5:])
    c.clock.advance(0)
    c.clock.advance(5)  # the deadline's timer fires for a request that completed: nothing happens
    [entry, done] = c.received()
    assert (entry.value.objectName, done.value.resultCode) == (b"o=crm", 0)
    assert not c.closed


def test_a_search_over_its_time_limit_is_answered_time_limit_exceeded() -> None:
    c = Client(time_limit=10.0, idle_timeout=3600.0)
    c.bind()
    c.directory.hold()
    c.send(2, _search())
    c.clock.advance(9.9)
    assert c.received() == []
    c.clock.advance(0.2)
    [done] = c.received()
    assert (done.id, type(done.value)) == (2, pureldap.LDAPSearchResultDone)
    assert done.value.resultCode == ldaperrors.LDAPTimeLimitExceeded.resultCode
    assert c.directory.cancelled == 1
    assert not c.closed
