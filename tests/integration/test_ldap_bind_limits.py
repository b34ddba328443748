"""Failed-bind limits under concurrency (review C10c): bursts of binds sent at once over real sockets,
limits per address and per name, the ppolicy-style lockout, and the ``auth`` pool's fair share."""

from __future__ import annotations

import time

import pytest_twisted
from ldaptor.protocols import pureldap
from twisted.internet import defer, endpoints, reactor

from tests.fixtures.ldap_server import RawClient, decode_messages, request

BUSY = (51, b"too many failed binds; try again later")


async def _connect(port: int, source: str) -> RawClient:
    client = RawClient()
    await endpoints.connectProtocol(
        endpoints.TCP4ClientEndpoint(reactor, "127.0.0.1", port, bindAddress=(source, 0)), client.protocol)
    return client


async def _clients(server, source: str, n: int) -> list[RawClient]:
    before = len(server.factory.connections)
    clients = await defer.gatherResults([defer.ensureDeferred(_connect(server.port, source)) for _ in range(n)])
    await server.factory.when_connections(lambda count: count >= before + n)
    return clients


def _answer(client: RawClient) -> defer.Deferred:
    """The first BindResponse on the connection, as (resultCode, errorMessage)."""
    def first(data: bytes) -> tuple[int, bytes]:
        msg = decode_messages(data)[0].value
        return msg.resultCode, msg.errorMessage

    return client.until(lambda d: bool(decode_messages(bytes(d)))).addCallback(first)


async def _bind(client: RawClient, name: str, password: str, msg_id: int = 1) -> tuple[int, bytes]:
    before = len(decode_messages(bytes(client.data)))
    client.write(request(pureldap.LDAPBindRequest(dn=name, auth=password), msg_id))
    msgs = await client.responses(before + 1)
    return msgs[-1].value.resultCode, msgs[-1].value.errorMessage


async def _close(clients: list[RawClient]) -> None:
    await defer.gatherResults([c.close() for c in clients])


@pytest_twisted.ensureDeferred
async def test_a_burst_of_wrong_binds_gets_at_most_the_limit_of_password_checks(ldap_server, capture_log_events):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 10})
    clients = await _clients(ldap_server, "127.0.0.1", 100)
    answers = [_answer(c) for c in clients]
    for i, c in enumerate(clients):  # all in one reactor turn: the server reads them side by side
        c.write(request(pureldap.LDAPBindRequest(dn="jane", auth=f"wrong-{i}"), 1))
    results = await defer.gatherResults(answers)
    checked = [r for r in results if r[0] == 49]
    assert 1 <= len(checked) <= 10, results
    assert all(r == BUSY for r in results if r[0] != 49), results
    # a bind arriving now is refused the same way: the burst's refusals are the rate limit's answer
    late = await _connect(ldap_server.port, "127.0.0.1")
    assert await _bind(late, "jane", "pw-jane") == BUSY
    failed_lines = [e for e in capture_log_events if e.startswith("failed bind from 127.0.0.1")]
    assert len(failed_lines) == len(checked)
    refusal_lines = [e for e in capture_log_events if e.startswith("bind refused")]
    assert len(refusal_lines) == 1, refusal_lines  # one line per address and minute, not ninety
    await _close(clients + [late])


@pytest_twisted.ensureDeferred
async def test_a_right_password_hidden_in_a_burst_after_the_limit_does_not_bind(ldap_server):
    ldap_server.add_user("bob", "pw-bob", "bob@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 10})
    clients = await _clients(ldap_server, "127.0.0.2", 50)
    answers = [_answer(c) for c in clients]
    for i, c in enumerate(clients):
        c.write(request(pureldap.LDAPBindRequest(dn="bob", auth="pw-bob" if i == 45 else f"guess-{i}"), 1))
    results = await defer.gatherResults(answers)
    assert results[45] == BUSY, results
    assert [r[0] for r in results].count(0) == 0
    assert sum(r[0] == 49 for r in results) <= 10
    await _close(clients)


@pytest_twisted.ensureDeferred
async def test_a_user_from_another_address_binds_promptly_during_a_flood(ldap_server):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    ldap_server.add_user("bob", "pw-bob", "bob@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 10})
    flood = await _clients(ldap_server, "127.0.0.3", 100)
    legit = await _connect(ldap_server.port, "127.0.0.4")
    answered: list[tuple[str, int]] = []
    answers = []
    for i, c in enumerate(flood):
        answers.append(_answer(c).addCallback(lambda r: answered.append(("flood", r[0])) or r))
        c.write(request(pureldap.LDAPBindRequest(dn="jane", auth=f"wrong-{i}"), 1))
    await defer.DeferredList([a for a in answers], fireOnOneCallback=True)  # the flood is being served
    t = time.perf_counter()
    assert await _bind(legit, "bob", "pw-bob") == (0, b"")
    elapsed = time.perf_counter() - t
    answered.append(("legit", 0))
    await defer.gatherResults(answers)
    checks = [i for i, (who, rc) in enumerate(answered) if who == "flood" and rc == 49]
    legit_at = answered.index(("legit", 0))
    # the flood's password checks share the auth pool with other addresses: bob's check does not wait
    # for the flood's to finish (before the fix it waited for nearly all of them)
    assert sum(i > legit_at for i in checks) >= len(checks) // 2, answered
    assert elapsed < 5.0
    await _close(flood + [legit])


@pytest_twisted.ensureDeferred
async def test_the_name_limit_counts_guesses_from_every_address(ldap_server):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 10, "failed_binds_per_name_per_minute": 5})
    for name in ("jane", "nobody"):
        seen = []
        for i in range(7):  # a different address each time: only the per-name limit applies
            c = await _connect(ldap_server.port, f"127.0.1.{i + 1 + (10 if name == 'nobody' else 0)}")
            seen.append(await _bind(c, name, f"wrong-{i}"))
            await c.close()
        assert [r[0] for r in seen] == [49] * 5 + [51] * 2, (name, seen)
    # the right password is refused too while the name is over its limit
    c = await _connect(ldap_server.port, "127.0.1.50")
    assert await _bind(c, "jane", "pw-jane") == BUSY
    await c.close()


@pytest_twisted.ensureDeferred
async def test_lockout_answers_a_known_and_an_unknown_name_alike(ldap_server):
    ldap_server.add_user("jane", "pw-jane", "jane@example.com")
    await ldap_server.start(limits={"failed_binds_per_minute": 100, "failed_binds_per_name_per_minute": 100,
                                    "lockout_failures": 3, "lockout_seconds": 2.0})
    seen: dict[str, list] = {}
    for name, right in (("jane", "pw-jane"), ("nobody", "anything")):
        c = await _connect(ldap_server.port, "127.0.2.1")
        steps = [await _bind(c, name, f"wrong-{i}", i + 1) for i in range(3)]
        # locked: even the right password fails, from any address, as a wrong one does
        other = await _connect(ldap_server.port, "127.0.2.2")
        steps.append(await _bind(other, name, right))
        seen[name] = steps
        await c.close()
        await other.close()
    assert seen["jane"] == seen["nobody"] == [(49, b"invalid credentials")] * 4
    # the lock ends after lockout_seconds
    deadline = time.monotonic() + 15
    c = await _connect(ldap_server.port, "127.0.2.3")
    msg_id = 1
    while True:
        rc = (await _bind(c, "jane", "pw-jane", msg_id))[0]
        if rc == 0 or time.monotonic() > deadline:
            break
        msg_id += 1
        await _wait(0.2)
    assert rc == 0
    await c.close()


def _wait(seconds: float) -> defer.Deferred:
    from twisted.internet import task

    return task.deferLater(reactor, seconds, lambda: None)
