"""Binds against abook's LDAP server: names, result codes, rate limits, Who am I?, TLS, pass-through."""

from __future__ import annotations

import time

import pytest_twisted
from ldaptor.protocols import pureldap
from twisted.internet import endpoints, reactor

from abook.passwords import hash_password
from abook.store import models
from tests.fixtures.ldap_server import RawClient, raw_connect, request, run_tool

WHOAMI = "1.3.6.1.4.1.4203.1.11.3"


async def _bind(client: RawClient, name: str, password: str, msg_id: int = 1) -> pureldap.LDAPBindResponse:
    before = len(client.data)
    client.write(request(pureldap.LDAPBindRequest(dn=name, auth=password), msg_id))
    data = await client.until(lambda d: len(d) > before)
    from tests.fixtures.ldap_server import decode_messages

    return decode_messages(bytes(data))[-1].value


async def _whoami(client: RawClient, msg_id: int) -> bytes:
    from tests.fixtures.ldap_server import decode_messages

    before = len(decode_messages(bytes(client.data)))
    client.write(request(pureldap.LDAPExtendedRequest(requestName=WHOAMI), msg_id))
    msgs = await client.responses(before + 1)
    return msgs[-1].value.response or b""


@pytest_twisted.ensureDeferred
async def test_bind_by_dn_user_name_and_mail_then_who_am_i(ldap_server):
    uid = ldap_server.add_user("Jane.Doe", "correct horse", "Jane.Doe@Example.com")
    await ldap_server.start()
    dn = ldap_server.user_dn(uid)
    out, err, code = await run_tool("ldapwhoami", "-x", "-H", f"ldap://127.0.0.1:{ldap_server.port}", "-D",
                                    dn.upper().replace("UID=", "uid="), "-w", "correct horse")
    assert code == 0, err
    assert out.strip() == "dn:" + dn
    for name in ("jane.doe", "JANE.DOE@example.com"):
        c = await raw_connect(ldap_server.port)
        assert (await _bind(c, name, "correct horse")).resultCode == 0
        assert await _whoami(c, 2) == b"dn:" + dn.encode()
        # a failed bind leaves the connection anonymous
        assert (await _bind(c, name, "wrong", 3)).resultCode == 49
        assert await _whoami(c, 4) == b""
        await c.close()


@pytest_twisted.ensureDeferred
async def test_bind_result_codes(ldap_server):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    ldap_server.add_user("gone", "pw-gone", "gone@example.com", active=False)
    await ldap_server.start(limits={"failed_binds_per_minute": 100})
    c = await raw_connect(ldap_server.port)
    assert (await _bind(c, "", "")).resultCode == 0
    assert (await _bind(c, "", "something", 2)).resultCode == 49
    assert (await _bind(c, "jane", "", 3)).resultCode == 53
    wrong = await _bind(c, "jane", "nope", 4)
    unknown = await _bind(c, "nobody", "nope", 5)
    inactive = await _bind(c, "gone", "pw-gone", 6)
    assert (wrong.resultCode, unknown.resultCode, inactive.resultCode) == (49, 49, 49)
    assert wrong.errorMessage == unknown.errorMessage == inactive.errorMessage
    before = len(c.data)
    c.write(request(pureldap.LDAPBindRequest(dn="", auth=(b"EXTERNAL", None), sasl=True), 7))
    from tests.fixtures.ldap_server import decode_messages

    await c.until(lambda d: len(d) > before)
    assert decode_messages(bytes(c.data))[-1].value.resultCode == 7
    await c.close()


@pytest_twisted.ensureDeferred
async def test_unknown_users_take_about_as_long_as_wrong_passwords(ldap_server):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 1000})
    c = await raw_connect(ldap_server.port)
    timings: dict[str, list[float]] = {"jane": [], "nobody": []}
    for i in range(4):
        for name in timings:
            t = time.perf_counter()
            assert (await _bind(c, name, f"wrong{i}", 10 + i * 2 + len(name) % 2)).resultCode == 49
            timings[name].append(time.perf_counter() - t)
    fast_wrong, fast_unknown = min(timings["jane"]), min(timings["nobody"])
    # both pay one argon2 verification (several ms); neither answers in a fraction of that
    assert fast_unknown > fast_wrong / 4 and fast_wrong > fast_unknown / 4, timings
    await c.close()


@pytest_twisted.ensureDeferred
async def test_failed_binds_are_rate_limited_per_address(ldap_server, capture_log_events):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 3})
    c = await raw_connect(ldap_server.port)
    codes = [(await _bind(c, "jane", "bad-guess", i)).resultCode for i in range(1, 5)]
    assert codes == [49, 49, 49, 51]
    # still refused with the right password: the address is over its limit
    assert (await _bind(c, "jane", "pw-jane", 5)).resultCode == 51
    # another address is not affected
    other = RawClient()
    await endpoints.connectProtocol(
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", ldap_server.port, bindAddress=("127.0.0.2", 0)),
        other.protocol)
    assert (await _bind(other, "jane", "pw-jane")).resultCode == 0
    await c.close()
    await other.close()
    text = " ".join(capture_log_events)
    assert "bad-guess" not in text and "pw-jane" not in text
    assert "too many failed binds from 127.0.0.1" in text


@pytest_twisted.ensureDeferred
async def test_password_change_invalidates_the_verification_cache(ldap_server):
    uid = ldap_server.add_user("jane", "old-pw", "jane@example.com")
    await ldap_server.start()
    c = await raw_connect(ldap_server.port)
    assert (await _bind(c, "jane", "old-pw")).resultCode == 0
    assert (await _bind(c, "jane", "old-pw", 2)).resultCode == 0  # from the cache
    with ldap_server.store.transaction() as s:
        s.get(models.SystemUser, uid).password_hash = hash_password("new-pw")
    assert (await _bind(c, "jane", "old-pw", 3)).resultCode == 49
    assert (await _bind(c, "jane", "new-pw", 4)).resultCode == 0
    await c.close()


@pytest_twisted.ensureDeferred
async def test_starttls_ldaps_and_require_tls_for_bind(ldap_server, tmp_path):
    uid = ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    await ldap_server.start(tls=True, require_tls_for_bind=True)
    dn = ldap_server.user_dn(uid)
    env = {"LDAPTLS_CACERT": str(tmp_path / "cert.pem")}
    plain = f"ldap://127.0.0.1:{ldap_server.port}"
    out, err, code = await run_tool("ldapwhoami", "-x", "-H", plain, "-D", dn, "-w", "pw-jane", env=env)
    assert code == 13, (out, err)
    out, err, code = await run_tool("ldapwhoami", "-x", "-ZZ", "-H", plain, "-D", dn, "-w", "pw-jane", env=env)
    assert code == 0, err
    assert out.strip() == "dn:" + dn
    out, err, code = await run_tool("ldapwhoami", "-x", "-H", f"ldaps://127.0.0.1:{ldap_server.tls_port}", "-D", dn,
                                    "-w", "pw-jane", env=env)
    assert code == 0, err
    assert out.strip() == "dn:" + dn
    # the root DSE offers StartTLS on the plain listener
    out, err, code = await run_tool("ldapsearch", "-x", "-H", plain, "-b", "", "-s", "base", "-LLL",
                                    "(objectClass=*)", "supportedExtension")
    assert "supportedExtension: 1.3.6.1.4.1.1466.20037" in out


@pytest_twisted.ensureDeferred
async def test_pass_through_binds_to_an_upstream_slapd(ldap_server, slapd_server):
    uid = ldap_server.add_user("jane.doe", None, "jane.doe@example.com")
    await ldap_server.start(auth="upstream", limits={"failed_binds_per_minute": 100}, upstream={
        "url": slapd_server.url, "bind_dn": "uid={username},ou=people,dc=example,dc=com", "timeout": 5.0})
    c = await raw_connect(ldap_server.port)
    assert (await _bind(c, "jane.doe@example.com", "upstream-pw")).resultCode == 0
    assert await _whoami(c, 2) == b"dn:" + ldap_server.user_dn(uid).encode()
    assert (await _bind(c, "jane.doe", "wrong", 3)).resultCode == 49
    # bob exists upstream but not in the CRM: no principal, no bind
    assert (await _bind(c, "bob", "bobs-pw", 4)).resultCode == 49
    await c.close()


@pytest_twisted.ensureDeferred
async def test_a_bind_the_upstream_never_answers_hits_the_request_timeout(ldap_server):
    from twisted.internet import protocol

    silent = reactor.listenTCP(0, protocol.Factory.forProtocol(protocol.Protocol), interface="127.0.0.1")
    try:
        ldap_server.add_user("jane.doe", None, "jane.doe@example.com")
        await ldap_server.start(auth="upstream", limits={"request_timeout": 0.3}, upstream={
            "url": f"ldap://127.0.0.1:{silent.getHost().port}", "timeout": 1.0})
        c = await raw_connect(ldap_server.port)
        t = time.perf_counter()
        assert (await _bind(c, "jane.doe", "whatever")).resultCode == 3
        assert time.perf_counter() - t < 1.0
        await c.close()
    finally:
        await silent.stopListening()
