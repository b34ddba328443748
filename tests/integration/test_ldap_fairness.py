"""One reader cannot starve everyone (review B3c/B3e): `abook serve` over a store of 12,000 contacts, an
org-wide reader pipelining the worst filters of the review on several connections, and another user
binding and looking up an address meanwhile, over real sockets."""

from __future__ import annotations

import os
import random
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from ldaptor.protocols import pureldap

from abook.server import encode
from tests.fixtures.ldap_server import decode_messages, request
from tests.helpers import free_port, wait_for_port

VENV_BIN = Path(sys.executable).parent
CONTACTS = 12_000
FIRST = ("Anna Ben Carla David Emma Felix Greta Hugo Ida Jonas Klara Lukas Mia Noah Olga Paul Quinn Rosa Sven "
         "Tina Ulf Vera Walter Xenia Yannick Zoe").split()
LAST = ("Schmidt Mueller Schneider Fischer Weber Meyer Wagner Becker Schulz Hoffmann Koch Richter Klein Wolf "
        "Schroeder Neumann Schwarz Zimmermann Braun Krueger Hartmann Lange Werner Krause Lehmann").split()


def worst_filter(offset: int = 0, elements: int = 500) -> bytes:
    """The review's B3e filter: an OR of 500 substring filters on cn, each six one-letter ``any`` parts
    (``(|(cn=*a*b*c*d*e*f*)(cn=*b*c*d*e*f*g*)...)``), as a SearchRequest op asking for no attributes."""
    letters = string.ascii_lowercase
    parts = [pureldap.LDAPFilter_substrings(type="cn", substrings=[
        pureldap.LDAPFilter_substrings_any(value=letters[(i + offset + j) % 26]) for j in range(6)])
        for i in range(elements)]
    op = pureldap.LDAPSearchRequest(baseObject="o=crm", scope=2, filter=pureldap.LDAPFilter_or(parts),
                                    attributes=["1.1"])
    return op.toWire()


def _build_store(config: Path) -> None:
    """Users alice (organisation-wide reader) and bob, and CONTACTS contacts owned by alice."""
    from sqlalchemy import insert

    from abook.config import load_config
    from abook.passwords import hash_password
    from abook.store import Store, make_engine, models, schema

    store = Store(make_engine(load_config(config).store_url))
    schema.upgrade(store.engine)
    rng = random.Random(5)
    with store.transaction() as s:
        bu = models.BusinessUnit(name="Org")
        s.add(bu)
        s.flush()
        role = models.Role(name="Reader", business_unit_id=bu.id)
        role.privileges = [models.RolePrivilege(entity=e, read_depth=models.ReadDepth.organisation)
                           for e in models.ENTITIES]
        s.add(role)
        users = {}
        for name in ("alice", "bob"):
            u = models.SystemUser(domainname=name, fullname=name.title(), internalemailaddress=f"{name}@example.com",
                                  business_unit_id=bu.id, password_hash=hash_password(f"{name}-pw"),
                                  address_book_matching="all")
            u.roles = [role]
            s.add(u)
            s.flush()
            users[name] = u.id
        rows = []
        for i in range(CONTACTS):
            first, last = rng.choice(FIRST), rng.choice(LAST)
            rows.append({"id": models.new_id(), "fullname": f"{first} {last} {i}", "firstname": first,
                         "lastname": last, "emailaddress1": f"p{i:05d}@example.com", "jobtitle": "Engineer",
                         "owner_id": users["alice"], "owningbusinessunit_id": bu.id})
        s.execute(insert(models.Contact), rows)
    store.dispose()


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    tmp = tmp_path_factory.mktemp("fairness")
    port = free_port()
    config = tmp / "abook.toml"
    # every fairness setting at its default; only the bind rate limit is raised for the probes
    config.write_text(f'[store]\ndata_dir = "{tmp / "var"}"\n[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
                      f'[ldap.limits]\nfailed_binds_per_minute = 1000\n[logging]\nlevel = "info"\n')
    _build_store(config)
    proc = subprocess.Popen([str(VENV_BIN / "abook"), "serve", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        os.kill(proc.pid, signal.SIGTERM)  # the daemon this fixture started, by its pid
        out, _ = proc.communicate(timeout=60)
    assert "Traceback" not in out, out
    assert "alice-pw" not in out and "bob-pw" not in out


class Client:
    """A blocking LDAP connection from a chosen loopback address; reads whole LDAPMessages."""

    def __init__(self, port: int, source: str = "127.0.0.1", timeout: float = 30.0) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout, source_address=(source, 0))
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def message(self) -> object:
        from abook.server.framing import read_header

        while True:
            header = read_header(self.buf, 0, len(self.buf))
            if header is not None and header[1] + header[2] <= len(self.buf):
                end = header[1] + header[2]
                frame, self.buf = self.buf[:end], self.buf[end:]
                return decode_messages(frame)[0]
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buf += chunk

    def bind(self, name: str, password: str, msg_id: int = 1) -> int:
        self.send(request(pureldap.LDAPBindRequest(dn=name, auth=password), msg_id))
        return self.message().value.resultCode

    def done(self) -> tuple[int, int, bytes]:
        """(message id, result code, message) of the next SearchResultDone, skipping entries."""
        while True:
            msg = self.message()
            if isinstance(msg.value, pureldap.LDAPSearchResultDone):
                return msg.id, msg.value.resultCode, msg.value.errorMessage

    def close(self) -> None:
        self.sock.close()


def _probe(port: int, source: str) -> float:
    """Seconds for a new connection's bind as bob and an address lookup; the probe fails after 30 s."""
    t = time.perf_counter()
    c = Client(port, source)
    try:
        assert c.bind("bob", "bob-pw") == 0
        c.send(request(pureldap.LDAPSearchRequest(
            baseObject="o=crm", scope=2, attributes=["cn", "mail"],
            filter=pureldap.LDAPFilter_equalityMatch(attributeDesc=pureldap.LDAPAttributeDescription("mail"),
                                                     assertionValue=pureldap.LDAPAssertionValue("p04242@example.com"))),
            2))
        entries = []
        while True:
            msg = c.message()
            if isinstance(msg.value, pureldap.LDAPSearchResultEntry):
                entries.append(msg)
            else:
                break
        assert msg.value.resultCode == 0 and len(entries) == 1
    finally:
        c.close()
    return time.perf_counter() - t


def test_a_reader_pipelining_the_worst_filters_does_not_starve_another_user(daemon):
    port = daemon
    attackers = [Client(port, "127.0.3.1", timeout=120) for _ in range(4)]
    codes: list[int] = []
    try:
        for c in attackers:
            assert c.bind("alice", "alice-pw") == 0
        ops = [worst_filter(i) for i in range(16)]
        for c in attackers:  # 4 connections x 16 pipelined: 64 searches of over a second each
            c.send(b"".join(encode.message(i + 2, op) for i, op in enumerate(ops)))
        _id, code, _msg = attackers[0].done()  # the attack is under way once its first answer is back
        codes.append(code)

        probes = [_probe(port, "127.0.3.2") for _ in range(3)]
        # before: up to 15 s (review B3e) and here the whole queue of 64 searches
        assert max(probes) < 5.0, probes
        reader = threading.Thread(target=lambda: codes.extend(attackers[1].done()[1] for _ in range(2)))
        reader.start()
        reader.join(60)
        # each expensive search ends at its cost budget with adminLimitExceeded
        assert set(codes) == {11}, codes
    finally:
        for c in attackers:  # the server abandons what they left
            c.close()
    assert _probe(port, "127.0.3.2") < 5.0


def test_the_cost_budget_ends_an_expensive_search_with_admin_limit_exceeded(daemon):
    c = Client(daemon, "127.0.3.3")
    try:
        assert c.bind("alice", "alice-pw") == 0
        t = time.perf_counter()
        c.send(encode.message(2, worst_filter()))
        assert c.done() == (2, 11, b"the search examined too much; narrow the filter or the base")
        assert time.perf_counter() - t < 30
        # a search that returns much but examines nothing in vain is not limited: the whole book, paged
        cookie, total = b"", 0
        for msg_id in range(3, 100):
            paged = ("1.2.840.113556.1.4.319", False, _paged_value(1000, cookie))
            c.send(request(pureldap.LDAPSearchRequest(baseObject="ou=Contacts,o=crm", scope=1, attributes=["cn"],
                                                      filter=pureldap.LDAPFilter_present("objectClass")),
                           msg_id, [paged]))
            while True:
                msg = c.message()
                if isinstance(msg.value, pureldap.LDAPSearchResultEntry):
                    total += 1
                    continue
                assert msg.value.resultCode == 0, msg.value.errorMessage
                cookie = _cookie_of(msg)
                break
            if not cookie:
                break
        assert total == CONTACTS
    finally:
        c.close()


def _paged_value(size: int, cookie: bytes) -> bytes:
    return encode.tlv(0x30, encode.tlv(0x02, size.to_bytes(2, "big")) + encode.octets(cookie))


def _cookie_of(msg: object) -> bytes:
    from ldaptor.protocols import pureber

    for oid, _crit, value in msg.controls or ():
        if oid == b"1.2.840.113556.1.4.319":
            seq, _ = pureber.berDecodeObject(pureber.BERDecoderContext(), value)
            return seq[1].value
    return b""
