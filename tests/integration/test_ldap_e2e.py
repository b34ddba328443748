"""abook's LDAP server end to end on the real stack: `abook init`, `abook import ldif/demo.ldif` and
`abook serve` (StoreDirectory over a migrated SQLite store), searched by OpenLDAP's ldapsearch, ldap3 and
raw BER in the style of each client of CLIENTS.md. The store and the daemon are built once per module and
store kind: on a SQLite file and on the suite's private PostgreSQL.

The expected sets follow README.md's table of demo users; records without a primary email (Litware Inc,
Janet Leverling, Ian Wright, Mario Pontes, the Training Room) and inactive ones (Adventure Works, Laura
Callahan, Daniel Tonini, the Old Orders queue, erin) never appear.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from ldaptor import ldapfilter
from ldaptor.protocols import pureldap

from tests.fixtures.ldap_server import decode_messages, request
from tests.helpers import REPO, free_port, wait_for_port

VENV_BIN = Path(sys.executable).parent
DEMO = REPO / "ldif" / "demo.ldif"
BOOKS = ("Accounts", "Contacts", "Leads", "Queues", "Users", "Facilities")
PAGED = "1.2.840.113556.1.4.319"
SORT = "1.2.840.113556.1.4.473"
VLV = "2.16.840.1.113730.3.4.9"

ACCOUNTS = {"Northwind Traders": "info@northwind.example", "Southridge Video": "hello@southridge.example",
            "Contoso Pharmaceuticals": "contact@contoso.example", "Fabrikam Support Ltd": "help@fabrikam.example"}
CONTACTS = {
    "Nancy Davolio": "nancy.davolio@northwind.example", "Andrew Fuller": "andrew.fuller@northwind.example",
    "Margaret Peacock": "margaret.peacock@northwind.example",
    "Steven Buchanan": "steven.buchanan@southridge.example", "Jürgen Müller": "juergen.mueller@contoso.example",
    "Zoë Schäfer": "zoe.schaefer@contoso.example", "Søren Kierkegaard": "soren.k@adventure-works.example",
    "Michael Suyama": "michael.suyama@example.org", "Robert King": "robert.king@fabrikam.example",
    "Anne Dodsworth": "anne.dodsworth@fabrikam.example", "Paula Wilson": "paula.wilson@example.net",
    "Hanna Moos": "hanna.moos@litware.example", "Yoshi Tannamuri": "yoshi.t@example.jp",
}
LEADS = {"Liu Wong": "liu.wong@tailspin.example", "Elizabeth Brown": "e.brown@wingtip.example",
         "Karl Jablonski": "karl.j@proseware.example", "Helen Bennett": "helen.bennett@blueyonder.example"}
QUEUES = {"Sales": "sales@example.com", "Support": "support@example.com"}
USERS = {"Ada Admin": "admin@example.com", "Alice Archer": "alice@example.com", "Bob Baker": "bob@example.com",
         "Carol Carter": "carol@example.com", "Dave Dunn": "dave@example.com",
         "Frank Fischer": "frank@example.com", "Gina Garcia": "gina@example.com"}
FACILITIES = {"Board Room": "boardroom@example.com", "Projector 1": "projector1@example.com"}
EVERYTHING = {"Accounts": ACCOUNTS, "Contacts": CONTACTS, "Leads": LEADS, "Queues": QUEUES, "Users": USERS,
              "Facilities": FACILITIES}


def _pick(book: dict[str, str], *names: str) -> dict[str, str]:
    return {n: book[n] for n in names}


#: user -> book -> {cn: mail}: exactly what each demo user sees (books left out are empty)
SEES: dict[str, dict[str, dict[str, str]]] = {
    "admin": EVERYTHING,
    "alice": EVERYTHING,
    # BU Reader in Sales North: records owned by bob and (inactive but still an owner) erin
    "bob": {"Accounts": _pick(ACCOUNTS, "Northwind Traders"),
            "Contacts": _pick(CONTACTS, "Nancy Davolio", "Andrew Fuller", "Margaret Peacock", "Hanna Moos"),
            "Leads": _pick(LEADS, "Liu Wong"), "Users": _pick(USERS, "Bob Baker")},
    # Own Records; Contacts synchronised: the active contacts she owns
    "carol": {"Accounts": _pick(ACCOUNTS, "Southridge Video"),
              "Contacts": _pick(CONTACTS, "Steven Buchanan", "Yoshi Tannamuri"),
              "Leads": _pick(LEADS, "Elizabeth Brown"), "Users": _pick(USERS, "Carol Carter")},
    # No Leads, organisation-wide; Contacts synchronised with the local filter (co=Germany)
    "dave": {"Accounts": ACCOUNTS,
             "Contacts": _pick(CONTACTS, "Jürgen Müller", "Zoë Schäfer", "Robert King", "Anne Dodsworth"),
             "Queues": QUEUES, "Users": USERS, "Facilities": FACILITIES},
    # Parent-Child Reader in Sales: Sales, Sales North and Sales South, not Support or Example Corp
    "frank": {"Accounts": _pick(ACCOUNTS, "Northwind Traders", "Southridge Video", "Contoso Pharmaceuticals"),
              "Contacts": {n: m for n, m in CONTACTS.items()
                           if n not in ("Robert King", "Anne Dodsworth", "Paula Wilson")},
              "Leads": _pick(LEADS, "Liu Wong", "Elizabeth Brown", "Karl Jablonski"),
              "Queues": _pick(QUEUES, "Sales"),
              "Users": _pick(USERS, "Alice Archer", "Bob Baker", "Carol Carter", "Frank Fischer")},
    # Own Records + BU Reader in Support: the widest role wins
    "gina": {"Accounts": _pick(ACCOUNTS, "Fabrikam Support Ltd"),
             "Contacts": _pick(CONTACTS, "Robert King", "Anne Dodsworth"), "Leads": _pick(LEADS, "Helen Bennett"),
             "Queues": _pick(QUEUES, "Support"), "Users": _pick(USERS, "Dave Dunn", "Gina Garcia"),
             "Facilities": _pick(FACILITIES, "Projector 1")},
}
USER_IDS = {"admin": 1, "alice": 2, "bob": 3, "carol": 4, "dave": 5, "erin": 6, "frank": 7, "gina": 8}


def user_dn(name: str) -> str:
    return f"uid=30000000-0000-4000-8000-{USER_IDS[name]:012d},ou=Users,o=crm"


@dataclass
class Daemon:
    port: int
    config: Path
    proc: subprocess.Popen
    #: the [store] section's body (a SQLite data_dir or a PostgreSQL url)
    store: str = ""

    @property
    def url(self) -> str:
        return f"ldap://127.0.0.1:{self.port}"


def _config(path: Path, store: str, port: int, extra: str = "") -> Path:
    path.write_text(f'[store]\n{store}\n[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
                    f'{extra}[logging]\nlevel = "info"\n')
    return path


def _abook(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(VENV_BIN / "abook"), *args], check=True, capture_output=True, text=True, timeout=120)


def _serve(config: Path, port: int, store: str) -> Daemon:
    proc = subprocess.Popen([str(VENV_BIN / "abook"), "serve", "-c", str(config)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc=proc)
    except BaseException:
        proc.kill()  # the daemon we just started, by its pid
        proc.communicate(timeout=30)
        raise
    return Daemon(port, config, proc, store)


def _stop(daemon: Daemon) -> str:
    os.kill(daemon.proc.pid, signal.SIGTERM)
    out, _ = daemon.proc.communicate(timeout=30)
    assert daemon.proc.returncode == 0, out
    return out


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def demo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """The demo organisation served by `abook serve`, on a SQLite file and on the suite's PostgreSQL."""
    tmp = tmp_path_factory.mktemp("ldap-e2e")
    port = free_port()
    if request.param == "sqlite":
        store = f'data_dir = "{tmp / "var"}"'
    else:
        store = f'url = "{request.getfixturevalue("postgres_server").create_database()}"'
    config = _config(tmp / "abook.toml", store, port)
    _abook("init", "-c", str(config))
    _abook("import", "-c", str(config), str(DEMO))
    daemon = _serve(config, port, store)
    yield daemon
    log = _stop(daemon)
    assert "Traceback" not in log
    assert "-demo" not in log  # no password in the log


# -- clients ----------------------------------------------------------------------------------------


def ldapsearch(d: Daemon, *args: str, user: str | None = None, password: str | None = None
               ) -> tuple[list[dict[str, list[str]]], int, str]:
    """Run OpenLDAP's ldapsearch; the entries it printed (LDIF parsed, base64 decoded), exit code, stderr."""
    auth = [] if user is None else ["-D", user, "-w", password if password is not None else f"{user}-demo"]
    r = subprocess.run(["ldapsearch", "-x", "-H", d.url, "-LLL", "-o", "ldif-wrap=no", *auth, *args],
                       capture_output=True, text=True, timeout=60, env={"PATH": os.environ["PATH"], "HOME": "/nonexistent"})
    return _ldif(r.stdout), r.returncode, r.stderr


def _ldif(text: str) -> list[dict[str, list[str]]]:
    entries = []
    for block in text.strip().split("\n\n"):
        entry: dict[str, list[str]] = {}
        for line in block.splitlines():
            if line.startswith("#"):
                continue
            name, sep, value = line.partition(":")
            if value.startswith(":"):
                value = base64.b64decode(value[1:].strip()).decode("utf-8")
            entry.setdefault(name, []).append(value.strip())
        if "dn" in entry:  # not a block of comments (ldapsearch prints the paged results cookies)
            entries.append(entry)
    return entries


def _book_of(dn: str) -> str:
    return dn.split(",")[1].split("=")[1]


def _records(entries: list[dict[str, list[str]]]) -> dict[str, dict[str, str]]:
    """book -> {cn: mail} of the record entries (uid=...) among ``entries``."""
    out: dict[str, dict[str, str]] = {}
    for e in entries:
        dn = e["dn"][0]
        if dn.startswith("uid="):
            assert len(e.get("mail", [])) == 1, e  # a listed record always has its primary email
            assert e["cn"][0] not in out.setdefault(_book_of(dn), {}), e  # each entry once
            out[_book_of(dn)][e["cn"][0]] = e["mail"][0]
    return out


def _ldap3(d: Daemon, user: str | None = None, password: str | None = None):
    import ldap3

    server = ldap3.Server("127.0.0.1", port=d.port, get_info=ldap3.NONE)
    return ldap3.Connection(server, user=user, password=password, raise_exceptions=False)


class Raw:
    """A blocking BER client on a plain socket, for what the tool clients cannot send."""

    def __init__(self, d: Daemon) -> None:
        self.sock = socket.create_connection(("127.0.0.1", d.port), timeout=30)
        self.buf = b""

    def send(self, op: object, msg_id: int, controls: list[tuple] | None = None) -> None:
        self.sock.sendall(request(op, msg_id, controls))

    def until_done(self, msg_id: int) -> list:
        """Every message up to and including the response that ends request ``msg_id``."""
        while True:
            msgs = decode_messages(self.buf)
            ends = [m for m in msgs if m.id == msg_id and not isinstance(
                m.value, (pureldap.LDAPSearchResultEntry, pureldap.LDAPSearchResultReference))]
            if ends:
                self.buf = b""
                return msgs
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buf += chunk

    def bind(self, name: str, password: str, msg_id: int = 1) -> int:
        self.send(pureldap.LDAPBindRequest(dn=name, auth=password), msg_id)
        return self.until_done(msg_id)[-1].value.resultCode

    def close(self) -> None:
        self.send(pureldap.LDAPUnbindRequest(), 99)
        assert self.sock.recv(1) == b""  # Unbind closes, unanswered
        self.sock.close()


def _search(base: str, filt: str, scope: int = 2, size: int = 0, attrs: tuple[str, ...] = ()) -> pureldap.LDAPSearchRequest:
    return pureldap.LDAPSearchRequest(baseObject=base, scope=scope, sizeLimit=size, timeLimit=0,
                                      filter=ldapfilter.parseFilter(filt), attributes=list(attrs))


def _names(msgs: list) -> set[str]:
    out = set()
    for m in msgs:
        if isinstance(m.value, pureldap.LDAPSearchResultEntry):
            attrs = {k.decode().lower() if isinstance(k, bytes) else k.lower(): v for k, v in m.value.attributes}
            out.add(attrs["cn"][0].decode() if isinstance(attrs["cn"][0], bytes) else attrs["cn"][0])
    return out


# -- visibility per demo user -------------------------------------------------------------------------


@pytest.mark.parametrize("user", sorted(SEES))
def test_each_user_sees_exactly_their_records_with_ldapsearch(demo: Daemon, user: str) -> None:
    entries, code, err = ldapsearch(demo, "-b", "o=crm", "(objectClass=*)", "cn", "mail", user=user)
    assert code == 0, err
    expected = {book: seen for book, seen in SEES[user].items() if seen}
    assert _records(entries) == expected
    # the tree itself is always there: suffix and the six books, also those that are empty for the user
    assert {e["dn"][0] for e in entries if not e["dn"][0].startswith("uid=")} == \
        {"o=crm", *(f"ou={b},o=crm" for b in BOOKS)}


@pytest.mark.parametrize("user", sorted(SEES))
def test_each_user_sees_exactly_their_records_with_ldap3_per_book(demo: Daemon, user: str) -> None:
    import ldap3

    conn = _ldap3(demo, user_dn(user), f"{user}-demo")
    assert conn.bind(), conn.result
    for book in BOOKS:
        # Evolution's one-level search under a book; an unreadable book is empty, not an error
        assert conn.search(f"ou={book},o=crm", "(objectClass=*)", ldap3.LEVEL, attributes=["cn", "mail"]) or \
            conn.result["result"] == 0, conn.result
        assert conn.result["result"] == 0
        got = {str(e.cn): str(e.mail) for e in conn.entries}
        assert got == SEES[user].get(book, {}), book
    conn.unbind()


def test_inactive_user_cannot_bind(demo: Daemon) -> None:
    for name in ("erin", "erin@example.com", user_dn("erin")):
        _entries, code, _err = ldapsearch(demo, "-b", "o=crm", "(cn=*)", user=name, password="erin-demo")
        assert code == 49
        conn = _ldap3(demo, name, "erin-demo")
        assert not conn.bind() and conn.result["result"] == 49


def test_unreadable_and_filtered_books(demo: Daemon) -> None:
    # dave: no Leads at all (empty, code 0); his Contacts are his local filter's (co=Germany) only
    entries, code, _ = ldapsearch(demo, "-b", "ou=Leads,o=crm", "-s", "one", "(objectClass=*)", user="dave")
    assert code == 0 and entries == []
    entries, code, _ = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "-s", "one", "(objectClass=*)", "co", user="dave")
    assert code == 0 and {e["co"][0] for e in entries} == {"Germany"} and len(entries) == 4
    # carol's synchronised Contacts against alice's "all"
    carol, _, _ = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "(mail=*)", "cn", user="carol")
    alice, _, _ = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "(mail=*)", "cn", user="alice")
    assert {e["cn"][0] for e in carol} == {"Steven Buchanan", "Yoshi Tannamuri"}
    assert {e["cn"][0] for e in alice} == set(CONTACTS)
    # a record the user may not see is absent as a base DN too: noSuchObject, its book as matchedDN
    nancy = "uid=50000000-0000-4000-8000-000000000001,ou=Contacts,o=crm"
    entries, code, err = ldapsearch(demo, "-b", nancy, "-s", "base", "(objectClass=*)", "cn", user="carol")
    assert code == 32 and entries == [] and "Matched DN: ou=Contacts,o=crm" in err
    entries, code, _ = ldapsearch(demo, "-b", nancy, "-s", "base", "(objectClass=*)", "cn", user="alice")
    assert code == 0 and entries[0]["cn"] == ["Nancy Davolio"]
    # records without a primary email or inactive: not even for the administrator, not by name either
    for hidden in ("Litware Inc", "Janet Leverling", "Ian Wright", "Mario Pontes", "Training Room",
                   "Adventure Works", "Laura Callahan", "Daniel Tonini", "Old Orders", "Erin*"):
        entries, code, _ = ldapsearch(demo, "-b", "o=crm", f"(cn={hidden})", "cn", user="admin")
        assert code == 0 and entries == [], hidden


# -- binds and anonymous access -----------------------------------------------------------------------


def test_binds_by_dn_user_name_and_mail(demo: Daemon) -> None:
    for name in ("alice", "alice@example.com", "ALICE@example.com", user_dn("alice")):
        r = subprocess.run(["ldapwhoami", "-x", "-H", demo.url, "-D", name, "-w", "alice-demo"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, (name, r.stderr)
        assert r.stdout.strip() == "dn:" + user_dn("alice")
    r = subprocess.run(["ldapwhoami", "-x", "-H", demo.url, "-D", "alice", "-w", "wrong"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 49


def test_anonymous_sees_root_dse_and_schema_only(demo: Daemon) -> None:
    entries, code, _ = ldapsearch(demo, "-b", "", "-s", "base", "(objectclass=*)", "namingContexts",
                                  "subschemaSubentry")
    assert code == 0 and entries[0]["namingContexts"] == ["o=crm"]
    assert entries[0]["subschemaSubentry"] == ["cn=Subschema"]
    entries, code, _ = ldapsearch(demo, "-b", "cn=Subschema", "-s", "base", "(objectClass=subschema)", "objectClasses")
    assert code == 0 and any("inetOrgPerson" in oc for oc in entries[0]["objectClasses"])
    # a leaf, as on slapd: nothing one level below it, itself in its subtree
    entries, code, _ = ldapsearch(demo, "-b", "cn=Subschema", "-s", "one", "(objectClass=*)")
    assert code == 0 and entries == []
    entries, code, _ = ldapsearch(demo, "-b", "cn=Subschema", "-s", "sub", "(objectClass=*)", "cn")
    assert code == 0 and [e["dn"] for e in entries] == [["cn=Subschema"]]
    entries, code, _ = ldapsearch(demo, "-b", "o=crm", "(objectClass=*)", "cn", "mail")
    assert code == 0 and _records(entries) == {}


def test_a_config_opening_queues_shows_them_to_anonymous(demo: Daemon, tmp_path: Path) -> None:
    port = free_port()
    config = _config(tmp_path / "anon.toml", demo.store, port, 'anonymous_books = ["Queues"]\n')
    other = _serve(config, port, demo.store)
    try:
        entries, code, _ = ldapsearch(other, "-b", "o=crm", "(objectClass=*)", "cn", "mail")
        assert code == 0 and _records(entries) == {"Queues": QUEUES}
    finally:
        _stop(other)


# -- each client style of CLIENTS.md on the demo data -----------------------------------------------


def test_thunderbird_keystrokes_each_on_a_new_connection(demo: Daemon) -> None:
    import ldap3

    seen = {}
    for fragment in ("r", "ro", "rob"):
        conn = _ldap3(demo, "alice", "alice-demo")
        assert conn.bind()
        conn.search("o=crm", f"(|(cn=*{fragment}*)(mail=*{fragment}*)(givenName=*{fragment}*)(sn=*{fragment}*))",
                    ldap3.SUBTREE, size_limit=100, attributes=[ldap3.ALL_ATTRIBUTES])
        assert conn.result["result"] == 0
        seen[fragment] = {str(e.cn) for e in conn.entries}
        conn.unbind()
    assert seen["rob"] == {"Robert King"}
    assert seen["rob"] <= seen["ro"] <= seen["r"]
    # its template cn=*%v1*%v2-* sends "*rob**": an empty any component matches like *rob*
    raw = Raw(demo)
    assert raw.bind("alice", "alice-demo") == 0
    rob = pureldap.LDAPFilter_substrings(type="cn", substrings=[pureldap.LDAPFilter_substrings_any("rob"),
                                                                pureldap.LDAPFilter_substrings_any("")])
    raw.send(pureldap.LDAPSearchRequest(baseObject="o=crm", scope=2, sizeLimit=100, filter=rob, attributes=[]), 2)
    msgs = raw.until_done(2)
    assert _names(msgs) == {"Robert King"} and msgs[-1].value.resultCode == 0
    raw.close()


def test_evolution_session(demo: Daemon) -> None:
    raw = Raw(demo)
    raw.send(_search("", "(objectclass=*)", 0, attrs=("supportedControl", "supportedExtension", "supportedFeatures",
                                                      "supportedLDAPVersion", "subschemaSubentry",
                                                      "schemaNamingContext")), 1)
    dse = raw.until_done(1)
    assert dse[-1].value.resultCode == 0 and len(dse) == 2
    raw.send(_search("cn=Subschema", "(objectClass=subschema)", 0, attrs=("objectClasses",)), 2)
    assert raw.until_done(2)[-1].value.resultCode == 0
    assert raw.bind("alice", "alice-demo", 3) == 0
    raw.send(_search("ou=Contacts,o=crm", "(|(displayName=an*)(mail=an*)(displayName=*an*)(mail=*an*)"
                     "(|(cn=an*)(sn=an*)))", 1, size=100), 4)
    msgs = raw.until_done(4)
    assert _names(msgs) == {"Andrew Fuller", "Anne Dodsworth", "Hanna Moos", "Nancy Davolio", "Yoshi Tannamuri",
                            "Steven Buchanan"}
    raw.send(pureldap.LDAPAbandonRequest(id=4), 5)  # abandoning a finished search: no answer, no harm
    # the offline cache: (cn=*) one level, paged by 5, with the returned cookie until it is empty
    from abook.server import encode

    cookie, names, msg_id = b"", [], 6
    while True:
        value = encode.tlv(0x30, encode.ber_int(5) + encode.octets(cookie))
        raw.send(_search("ou=Contacts,o=crm", "(cn=*)", 1), msg_id, [(PAGED, False, value)])
        msgs = raw.until_done(msg_id)
        assert msgs[0].id == msg_id  # nothing was sent for the abandoned id
        names += [m.value.objectName for m in msgs if isinstance(m.value, pureldap.LDAPSearchResultEntry)]
        done = msgs[-1]
        assert done.value.resultCode == 0
        (control,) = [c for c in done.controls if c[0] == PAGED.encode()]
        cookie = _paged_cookie(control[2])
        msg_id += 1
        if not cookie:
            break
    assert len(names) == len(set(names)) == len(CONTACTS) and msg_id == 6 + 3
    raw.close()


def _paged_cookie(value: bytes) -> bytes:
    from ldaptor.protocols import pureber

    seq, _ = pureber.berDecodeObject(pureber.BERDecoderContext(), value)
    return seq.data[1].value


def test_outlook_upn_bind_prefix_search_and_critical_sort(demo: Daemon) -> None:
    import ldap3

    conn = _ldap3(demo, "alice@example.com", "alice-demo")
    assert conn.bind(), conn.result
    conn.search("o=crm", "(&(mail=*)(|(mail=an*)(|(cn=an*)(|(sn=an*)(givenName=an*)))))", ldap3.SUBTREE,
                size_limit=100, time_limit=60, attributes=["cn", "mail"])
    assert conn.result["result"] == 0
    assert {str(e.cn) for e in conn.entries} == {"Andrew Fuller", "Anne Dodsworth"}
    conn.unbind()
    # browsing with VLV (sort + critical VLV) is served: tests/integration/test_ldap_vlv.py
    # a critical sort that cannot be served (an unknown attribute; several books) sends no entries, then 12
    for base, key in (("ou=Leads,o=crm", "x-unknown"), ("o=crm", "cn")):
        entries, code, err = ldapsearch(demo, "-b", base, "-E", f"!sss={key}", "(cn=*)", "cn", user="alice")
        assert code == 12 and entries == [], (base, key, err)
    entries, code, _ = ldapsearch(demo, "-b", "o=crm", "-E", "sss=cn", "(cn=*)", "cn", "mail", user="alice")
    assert code == 0 and len(_records(entries)) == len(BOOKS)  # not critical: served unsorted
    # the sort alone, on one book, is served
    entries, code, _ = ldapsearch(demo, "-b", "ou=Leads,o=crm", "-s", "one", "-E", "!sss=cn", "(cn=*)", "cn",
                                  user="alice")
    assert code == 0 and [e["cn"][0] for e in entries] == sorted(LEADS)


def test_apple_base_root_or_filter_with_unserved_attributes(demo: Daemon) -> None:
    raw = Raw(demo)
    assert raw.bind(user_dn("alice"), "alice-demo") == 0
    raw.send(_search("", "(|(cn=nancy*)(telephoneNumber=foo*)(x-apple-unserved=*)(mail=karl*))", 2), 2)
    msgs = raw.until_done(2)
    assert msgs[-1].value.resultCode == 0
    assert _names(msgs) == {"Nancy Davolio", "Karl Jablonski"}
    raw.send(_search("", "(objectClass=*)", 1), 3)  # one level below the root DSE: the suffix
    msgs = raw.until_done(3)
    assert [m.value.objectName for m in msgs[:-1]] == [b"o=crm"]
    raw.close()


def test_mutt_lowercase_attribute_names(demo: Daemon) -> None:
    entries, code, _ = ldapsearch(demo, "-b", "o=crm", "(|(givenname=peacock)(sn=peacock)(cn=peacock)(mail=peacock))",
                                  user="bob")
    assert code == 0 and [e["cn"][0] for e in entries] == ["Margaret Peacock"]
    entries, code, _ = ldapsearch(demo, "-b", "o=crm", "(|(givenname=*dav*)(sn=*dav*)(cn=*dav*)(mail=*dav*))",
                                  "cn", user="bob")
    assert code == 0 and {e["cn"][0] for e in entries} == {"Nancy Davolio"}
    entries, code, _ = ldapsearch(demo, "-b", "o=crm", "(|(givenname=*dav*)(sn=*dav*)(cn=*dav*)(mail=*dav*))",
                                  "cn", user="alice")
    assert code == 0 and {e["cn"][0] for e in entries} == {"Nancy Davolio", "Dave Dunn"}


# -- downloads, limits, changes -----------------------------------------------------------------------


def test_paged_download_of_the_whole_contacts_book(demo: Daemon) -> None:
    entries, code, err = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "-s", "one", "-E", "pr=3/noprompt",
                                    "(objectClass=*)", "cn", "mail", user="alice")
    assert code == 0, err
    assert _records(entries) == {"Contacts": CONTACTS}
    assert len({e["dn"][0] for e in entries}) == len(entries) == len(CONTACTS)


def test_size_limit_sends_the_entries_then_code_4(demo: Daemon) -> None:
    entries, code, err = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "-s", "one", "-z", "3", "(cn=*)", "cn",
                                    user="alice")
    assert code == 4 and len(entries) == 3 and "Size limit exceeded" in err
    assert {e["cn"][0] for e in entries} <= set(CONTACTS)
    entries, code, _ = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "-s", "one", "-z", str(len(CONTACTS)),
                                  "(cn=*)", "cn", user="alice")
    assert code == 0 and len(entries) == len(CONTACTS)  # exactly the limit is not exceeded
    # paged: the client's size limit counts the whole search, not each page (as slapd does)
    entries, code, err = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "-s", "one", "-E", "pr=2/noprompt", "-z", "5",
                                    "(cn=*)", "cn", user="alice")
    assert code == 4 and len(entries) == 5, err
    entries, code, _ = ldapsearch(demo, "-b", "ou=Contacts,o=crm", "-s", "one", "-E", "pr=5/noprompt", "-z", "5",
                                  "(cn=*)", "cn", user="alice")
    assert code == 4 and len(entries) == 5


def test_a_change_in_the_store_is_visible_to_the_next_search(demo: Daemon, tmp_path: Path) -> None:
    text = DEMO.read_text()
    start = text.index("dn: uid=50000000-0000-4000-8000-000000000014,ou=Contacts,o=crm")
    record = text[start: text.index("\n\n", start)]
    changed = tmp_path / "paula.ldif"
    changed.write_text(record.replace("paula.wilson@example.net", "paula.w@example.net")
                       .replace("cn: Paula Wilson", "cn: Paula Wilson-Smith") + "\n")
    before, _, _ = ldapsearch(demo, "-b", "o=crm", "(mail=paula*)", "cn", "mail", user="alice")
    assert [(e["cn"][0], e["mail"][0]) for e in before] == [("Paula Wilson", "paula.wilson@example.net")]
    try:
        _abook("import", "-c", str(demo.config), str(changed))
        after, _, _ = ldapsearch(demo, "-b", "o=crm", "(mail=paula*)", "cn", "mail", user="alice")
        assert [e["mail"][0] for e in after] == ["paula.w@example.net"]
        entries, _, _ = ldapsearch(demo, "-b", "o=crm", "(mail=paula.wilson@example.net)", "cn", user="alice")
        assert entries == []
    finally:
        _abook("import", "-c", str(demo.config), str(DEMO))  # the demo again, for the module's other tests
    again, _, _ = ldapsearch(demo, "-b", "o=crm", "(mail=paula*)", "mail", user="alice")
    assert [e["mail"][0] for e in again] == ["paula.wilson@example.net"]
