"""The LDAP protocol side alone: abook's server answering every search with 100 canned entries.

Measures what framing, decoding, controls and encoding cost per search, without SQL, so it is the
ceiling the store-backed directory can reach. Run it with the benchmark's load generator::

    .venv/bin/python bench/ldap_protocol.py --port 10390 &      # prints its pid
    python3 bench/gen_directory.py -n 2000 -o /tmp/crm.ldif
    python3 bench/ldapload.py -H ldap://127.0.0.1:10390 -b o=crm --ldif /tmp/crm.ldif \\
        --workload contains -c 8 -d 10 --server-pid PID
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from twisted.internet import defer, reactor
from zope.interface import implementer

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from abook.config import parse_config  # noqa: E402
from abook.directory.api import Entry, IDirectory, SearchDone  # noqa: E402
from abook.server.service import LDAPServerFactory  # noqa: E402


def canned(n: int = 100) -> list[Entry]:
    out = []
    for i in range(n):
        attrs = [("objectClass", (b"top", b"person", b"organizationalPerson", b"inetOrgPerson", b"crmRecord"))]
        attrs += [(name, (f"{name} value {i} M\xc3\xbcller".encode(),)) for name in (
            "cn", "displayName", "givenName", "sn", "mail", "telephoneNumber", "mobile", "title", "department",
            "ou", "o", "street", "l", "st", "postalCode", "co", "description", "labeledURI", "crmEntity", "crmId")]
        out.append(Entry(f"uid=0b4a5c8e-1111-2222-3333-{i:012d},ou=Contacts,o=crm", tuple(attrs)))
    return out


@implementer(IDirectory)
class CannedDirectory:
    """20,000 distinct entries; a search gets 100 of them, chosen by its filter (so repeats repeat)."""

    def __init__(self) -> None:
        self.entries = canned(20_000)

    def search(self, spec, send_entry):
        start = hash(repr(spec.filter)) % (len(self.entries) - 100)
        limit = min(spec.size_limit or 100, 100)
        for e in self.entries[start: start + limit]:
            send_entry(e)
        return defer.succeed(SearchDone(result_code=4 if limit < 101 else 0))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=10390)
    args = ap.parse_args()
    config = parse_config({"ldap": {"anonymous_books": ["Contacts"]}}).ldap
    factory = LDAPServerFactory(config, CannedDirectory(), None, reactor)
    reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    print(os.getpid(), flush=True)
    reactor.run()


if __name__ == "__main__":
    main()
