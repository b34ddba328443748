"""The "done when" of the admin's path, as docs/deployment.md walks it: from an empty directory to a site
with two peer business units, the standard roles, users, the example CSV of contacts, and a mail client
(Thunderbird's autocomplete search, sent by ldapsearch) that finds them, using only the documented
commands, run as separate processes with ABOOK_CONFIG from another directory."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port, stop_process, wait_for_port

ABOOK = str(Path(sys.executable).parent / "abook")
#: Thunderbird's autocomplete filter for "jo" (docs/mail-clients/thunderbird.md)
AUTOCOMPLETE = "(|(cn=*jo*)(mail=*jo*)(givenName=*jo*)(sn=*jo*))"
#: the example file's contacts that match it (Mary Major by her mail address, mary.major@...)
EVERYONE = ["Joanna M\u00fcller", "John Johnson", "Mary Major"]


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, int]:
    port = free_port()
    site = tmp_path / "etc-abook"
    site.mkdir()
    config = site / "abook.toml"
    config.write_text(f'[store]\ndata_dir = "data"\n[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n'
                      '[import]\ndefault_owner = "jane"\n')
    elsewhere = tmp_path / "home"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.setenv("ABOOK_CONFIG", str(config))
    return config, port


def abook(*argv: str, stdin: str | None = None) -> str:
    r = subprocess.run([ABOOK, *argv], input=stdin, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, f"abook {' '.join(argv)}: {r.stderr}"
    return r.stdout


def search(port: int, who: str, password: str, base: str = "o=crm") -> list[str]:
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-H", f"ldap://127.0.0.1:{port}", "-D", who, "-w", password,
                        "-b", base, "-z", "100", AUTOCOMPLETE, "cn"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    names = [line[4:] for line in r.stdout.splitlines() if line.startswith("cn: ")]
    names += [base64.b64decode(line[5:]).decode() for line in r.stdout.splitlines() if line.startswith("cn:: ")]
    return sorted(names)


def test_from_nothing_to_a_site_a_mail_client_can_use(site: tuple[Path, int]) -> None:
    config, port = site
    assert "OK (store sqlite" in abook("check-config")
    assert "added 13 standard roles" in abook("init", "--standard-roles")
    for unit in ("Acme", "Sales", "Service"):
        abook("bu", "add", unit)
    assert [line.split("  (")[0] for line in abook("bu", "list").splitlines()] == ["Acme", "  Sales", "  Service"]
    abook("user", "add", "jane", "--bu", "Sales", "--first", "Jane", "--last", "Doe", "--email", "jane@acme.example",
          "--role", "Salesperson", "--password-stdin", stdin="jane-pw\n")
    abook("user", "add", "sam", "--bu", "Service", "--email", "sam@acme.example", "--role",
          "Customer Service Representative", "--password-stdin", stdin="sam-pw\n")
    assert "3 added" in abook("import", str(REPO / "examples" / "contacts.csv"), "--owner", "jane")
    assert (config.parent / "data" / "abook.sqlite3").exists()  # relative to the config, not the cwd

    daemon = subprocess.Popen([ABOOK, "serve"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc=daemon, timeout=60)
        # jane owns the contacts: her (synchronised) Contacts book has them; bind by mail address
        assert search(port, "jane@acme.example", "jane-pw") == EVERYONE
        # sam's role reads every contact, but a new user's Contacts book shows only the contacts they own
        assert search(port, "sam", "sam-pw") == []
        assert "Contacts book: only the active contacts they own" in abook("user", "show", "sam")
        abook("user", "set", "sam", "address_book_matching=all")
        assert search(port, "sam", "sam-pw") == EVERYONE  # no restart needed
        assert search(port, "sam", "sam-pw", "ou=Contacts,o=crm") == EVERYONE
    finally:
        stop_process(daemon)
    exported = abook("export", "--entity", "contact")
    assert exported.count("\ncn: ") + exported.count("\ncn:: ") == 3  # CSV contacts carry a full name: a cn each
