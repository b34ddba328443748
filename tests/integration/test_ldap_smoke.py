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
