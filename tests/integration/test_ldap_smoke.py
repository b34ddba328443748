"""Smoke: the server answers ldapsearch on the root DSE and a subtree search."""

from __future__ import annotations

import pytest_twisted

from tests.fixtures.ldap_server import run_tool


@pytest_twisted.ensureDeferred
async def test_root_dse_and_search(ldap_server):
    await ldap_server.start(anonymous_books=["Contacts"])
    url = f"ldap://127.0.0.1:{ldap_server.port}"
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "", "-s", "base", "-LLL", "(objectclass=*)")
    assert code == 0, err
    assert "namingContexts: o=crm" in out
    out, err, code = await run_tool("ldapsearch", "-x", "-H", url, "-b", "ou=Contacts,o=crm", "-LLL", "-z", "5",
                                    "(cn=*roger*)")
    assert code == 4, (out, err)
    assert out.count("dn: ") == 5


@pytest_twisted.ensureDeferred
async def test_connections_disable_nagle(ldap_server):
    """Responses go out at once: with Nagle's algorithm on, the small SearchResultDone after a page of
    entries waits for the client's delayed ACK (about 40 ms a page), so a paged download crawls."""
    import socket

    from tests.fixtures.ldap_server import raw_connect

    await ldap_server.start(tls=True)
    plain = await raw_connect(ldap_server.port)
    secure = await raw_connect(ldap_server.tls_port)
    await ldap_server.factory.when_connections(lambda n: n == 1)
    await ldap_server.services[-1].factory.when_connections(lambda n: n == 1)
    for factory in (ldap_server.factory, ldap_server.services[-1].factory):
        (conn,) = factory.connections
        sock = conn.transport.getHandle()
        if not isinstance(sock, socket.socket):  # LDAPS: the TLS connection wraps the TCP transport
            sock = conn.transport.transport.getHandle()
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    await plain.close()
    await secure.close()
