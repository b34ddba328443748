"""check-config finds what the daemon would trip over, or silently get wrong, and says all of it at once in
one format, ``FILE: dotted.key: message`` (review newcomer-2026-12-07, problems 3, 4, 12 and 14)."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.cli import main
from abook.config import parse_config
from abook.errors import ConfigError


def _problems(data: dict, config_dir: Path | str = ".") -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(data, file="abook.toml", config_dir=str(config_dir))
    return str(e.value).splitlines()


@pytest.mark.parametrize(("listen", "message"), [
    ("tcp:port=abc", "bad endpoint 'tcp:port=abc': port: expected a number from 1 to 65535, got 'abc'"),
    ("tcp:99999", "bad endpoint 'tcp:99999': port: expected a number from 1 to 65535, got '99999'"),
    ("tcp:10389:interfce=127.0.0.1",
     "bad endpoint 'tcp:10389:interfce=127.0.0.1': unknown option 'interfce'; tcp: takes port, interface, backlog"),
    ("tcp:10389:backlog=many", "bad endpoint 'tcp:10389:backlog=many': backlog: expected a number, got 'many'"),
    ("tcp6:abc", "bad endpoint 'tcp6:abc': port: expected a number from 1 to 65535, got 'abc'"),
    ("unix:/run/abook.sock:mode=999", "bad endpoint 'unix:/run/abook.sock:mode=999': mode: expected a number, got '999'"),
    ("systemd:domain=INET", "bad endpoint 'systemd:domain=INET': give exactly one of index= and name="),
    ("ssl:10636", "an ssl: endpoint serves LDAPS: give 'ssl:10636' in ldap.listen_tls"),
    ("tcp:10389\\", "bad endpoint 'tcp:10389\\\\': Twisted cannot read it (generator raised StopIteration)"),
])
def test_endpoints_are_parsed_as_the_daemon_parses_them(listen: str, message: str) -> None:
    """`listen = ["tcp:port=abc"]` was OK to check-config and a 38-line ValueError traceback from serve."""
    assert _problems({"ldap": {"listen": ["tcp:10389:interface=127.0.0.1", listen]}}) == [
        f"abook.toml: ldap.listen[1]: {message}"]


def test_listen_takes_plain_endpoints_and_listen_tls_ssl_ones() -> None:
    """A tcp: endpoint in listen_tls would have served plain LDAP on the LDAPS port."""
    assert _problems({"ldap": {"listen_tls": ["tcp:10636"]}}) == [
        'abook.toml: ldap.listen_tls[0]: expected an ssl: endpoint such as "ssl:10636:interface=127.0.0.1", got '
        "'tcp:10636' (plain LDAP and StartTLS listen on ldap.listen)",
        "abook.toml: ldap.listen_tls: LDAPS listeners need tls_certificate and tls_key"]
    # systemd's inherited sockets exist only under systemd: their arguments are checked, not the sockets
    config = parse_config({"ldap": {"listen": ["tcp:10389:interface=127.0.0.1:backlog=100", r"tcp6:10389:interface=\:\:1",
                                               "unix:/run/abook/ldap.sock:mode=660", "systemd:domain=INET:index=0"]}})
    assert len(config.ldap.listen) == 4


def test_upstream_auth_needs_its_table() -> None:
    """Review 4: `auth = "upstream"` alone was OK, and the daemon then checked the local hashes."""
    assert _problems({"ldap": {"auth": "upstream"}}) == [
        'abook.toml: ldap.upstream: auth = "upstream" needs an [ldap.upstream] table with the url of the directory '
        "that checks the passwords"]


def test_a_router_mailbox_needs_an_owner_and_names_are_unique() -> None:
    mailboxes = [{"name": "jane", "type": "imap"}, {"name": "jane", "type": "imap", "owner": "jane.doe"},
                 {"name": "fwd", "type": "pop3", "role": "forward"}]
    assert _problems({"mailboxes": mailboxes}) == [
        'abook.toml: mailboxes[0].owner: a router mailbox needs an owner: a CRM user name or "queue:<email address>" '
        '(or role = "forward")',
        "abook.toml: mailboxes[1].name: another [[mailboxes]] table is named 'jane'"]


@pytest.mark.parametrize(("section", "template", "message"), [
    ("template", "{mail", "not a valid template (expected '}' before end of string; a literal brace is written {{ or "
                          "}}), got '{mail'"),
    ("template", "{mailaddress}", "unknown placeholder {mailaddress} in '{mailaddress}': expected {username}, {mail} "
                                  "or {id}"),
    ("template", "{}", "unknown placeholder {} in '{}': expected {username}, {mail} or {id}"),
    ("bind_dn", "uid={uid},ou=people", "unknown placeholder {uid} in 'uid={uid},ou=people': expected {username}, "
                                       "{mail} or {id}"),
])
def test_unknown_placeholders(section: str, template: str, message: str) -> None:
    """Review 4: `username = "{mail}"` in the template passed, then every rescan logged a KeyError traceback."""
    if section == "template":
        data, key = {"router": {"user_mailbox_template": {"username": template}}}, "router.user_mailbox_template.username"
    else:
        data, key = {"ldap": {"upstream": {"url": "ldaps://ad.example.com", "bind_dn": template}}}, "ldap.upstream.bind_dn"
    assert _problems(data) == [f"abook.toml: {key}: {message}"]


def test_one_placeholder_vocabulary_for_both_templates() -> None:
    """The template took {email} and {user}, bind_dn {username}, {mail} and {id}: now both take the three,
    and the template's old names still work."""
    from ldap3.utils.dn import escape_rdn

    from abook.config import placeholders

    for template, filled in [("{username}", "jane,doe"), ("{mail}", "jane@example.com"), ("{id}", "0f1e"),
                             ("{user}@corp", "jane,doe@corp"), ("{email}", "jane@example.com")]:
        config = parse_config({"router": {"user_mailbox_template": {"username": template}},
                               "ldap": {"upstream": {"url": "ldaps://ad.example.com", "bind_dn": f"uid={template}"}}})
        assert config.router.user_mailbox_template is not None and config.ldap.upstream is not None
        assert placeholders.fill(config.router.user_mailbox_template.username, "jane,doe", "jane@example.com",
                                 "0f1e") == filled
        assert placeholders.fill(config.ldap.upstream.bind_dn, "jane,doe", "jane@example.com", "0f1e",
                                 escape_rdn) == "uid=" + filled.replace(",", "\\,")


def test_port_ranges() -> None:
    assert _problems({"smtp": {"port": 99999}, "mailboxes": [{"name": "a", "type": "imap", "owner": "a", "port": 0}],
                      "router": {"user_mailbox_template": {"port": 65536}}}) == [
        "abook.toml: mailboxes[0].port: expected a number greater than or equal to 1, got 0",
        "abook.toml: router.user_mailbox_template.port: expected a number less than or equal to 65535, got 65536",
        "abook.toml: smtp.port: expected a number less than or equal to 65535, got 99999"]


def test_the_loaders_own_keys_are_unknown_keys_in_a_file() -> None:
    """Review 14: a top-level `config_dir = "/etc"` was silently accepted (and overridden)."""
    assert _problems({"config_dir": "/etc", "config_file": "x.toml"}) == [
        "abook.toml: config_dir: unknown key", "abook.toml: config_file: unknown key"]


@pytest.mark.parametrize(("url", "message"), [
    ("mysql://abook:s3cret@db.example.com/abook", 'not mysql'),
    ("postgresql+psycopg2://abook:s3cret@db.example.com/abook", "the postgresql driver 'psycopg2' is not installed"),
    ("db.example.com/abook", "expected a database URL: abook runs on"),
])
def test_store_urls_abook_cannot_use(url: str, message: str) -> None:
    """Review 3: `mysql://...` was OK to check-config; `abook init` then ended in `No module named 'MySQLdb'`."""
    [line] = _problems({"store": {"url": url}})
    assert line.startswith("abook.toml: store.url: ") and message in line
    assert 'SQLite' in line and '"postgresql+psycopg://user@host/database"' in line
    assert "s3cret" not in line
    for url in ("sqlite:////var/lib/abook/abook.sqlite3", "postgresql+psycopg://abook@db/abook",
                "postgresql://abook@db/abook"):  # plain postgresql:// means psycopg too (store/__init__.py)
        assert parse_config({"store": {"url": url}}).store.url == url


def test_a_data_dir_that_is_a_file(tmp_path: Path) -> None:
    (tmp_path / "var").write_text("not a directory\n")
    assert _problems({"store": {}}, tmp_path) == ["abook.toml: store.data_dir: var is a file, not a directory"]
    # with a database URL the data directory holds no store
    parse_config({"store": {"url": "postgresql+psycopg://abook@db/abook"}}, config_dir=str(tmp_path))


def test_secret_file_problems_name_their_key_and_come_with_the_others(tmp_path: Path) -> None:
    """Review 12: `smtp: password_file: cannot read ...` beside `smtp.security: expected ...`."""
    assert _problems({"smtp": {"password_file": str(tmp_path / "missing"), "security": "ssl", "password": "x"}}) == [
        "abook.toml: smtp.security: expected 'tls', 'starttls' or 'none', got 'ssl'",
        "abook.toml: smtp.password_file: give either password or password_file, not both"]


def test_problems_of_keys_together_come_with_the_problems_of_single_keys() -> None:
    """A section's cross-key problems are reported even when a key of it is wrong too: all at once."""
    assert _problems({"ldap": {"auth": "upstream", "workers": 0, "tls_certificate": "cert.pem"}}) == [
        "abook.toml: ldap.tls_certificate: no such file cert.pem",
        "abook.toml: ldap.workers: expected a number greater than or equal to 1, got 0",
        "abook.toml: ldap.tls_key: give both tls_certificate and tls_key, or neither",
        'abook.toml: ldap.upstream: auth = "upstream" needs an [ldap.upstream] table with the url of the directory '
        "that checks the passwords"]


def test_check_config_prints_every_problem_one_line_each(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The review's file (`workers = 0`, `max_page_size = "big"`, `level = "loud"`, `port = 99999`) printed only
    its first problem; with the checks above, they all come at once."""
    config = tmp_path / "b25-multi.toml"
    config.write_text('config_dir = "/etc"\n[ldap]\nworkers = 0\nlisten = "tcp:port=abc"\nauth = "upstream"\n'
                      '[ldap.limits]\nmax_page_size = "big"\n[logging]\nlevel = "loud"\n[smtp]\nport = 99999\n'
                      '[[mailboxes]]\nname = "jane"\ntype = "imap"\n')
    assert main(["check-config", str(config)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        "abook: b25-multi.toml: config_dir: unknown key",
        "abook: b25-multi.toml: ldap.listen[0]: bad endpoint 'tcp:port=abc': port: expected a number from 1 to "
        "65535, got 'abc'",
        "abook: b25-multi.toml: ldap.workers: expected a number greater than or equal to 1, got 0",
        "abook: b25-multi.toml: ldap.limits.max_page_size: expected integer, got 'big'",
        'abook: b25-multi.toml: ldap.upstream: auth = "upstream" needs an [ldap.upstream] table with the url of the '
        "directory that checks the passwords",
        "abook: b25-multi.toml: logging.level: expected 'debug', 'info', 'warn' or 'error', got 'loud'",
        "abook: b25-multi.toml: smtp.port: expected a number less than or equal to 65535, got 99999",
        'abook: b25-multi.toml: mailboxes[0].owner: a router mailbox needs an owner: a CRM user name or '
        '"queue:<email address>" (or role = "forward")',
    ]


def test_graph_mailboxes_and_transport_are_checked(tmp_path: Path) -> None:
    """Exchange Online through Graph: the app registration's ids, one credential, a readable certificate."""
    (tmp_path / "key-only.pem").write_text("-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n")
    good = {"tenant": "contoso.onmicrosoft.com", "client_id": "6a7b8c9d-1234-4000-8000-0000000ab00c",
            "client_secret": "s", "mailbox": "jane@contoso.com"}
    without_secret = {k: v for k, v in good.items() if k != "client_secret"}
    assert _problems({"mailboxes": [
        {"name": "a", "type": "graph", "owner": "jane"},
        {"name": "b", "type": "graph", "owner": "jane", "graph": {**good, "tenant": "contoso", "client_id": "s3cr~t",
                                                                 "mailbox": "jane"}},
        {"name": "c", "type": "graph", "owner": "jane", "graph": {**without_secret,
                                                                 "certificate_file": str(tmp_path / "key-only.pem")}},
        {"name": "d", "type": "graph", "owner": "jane", "graph": {**good, "certificate_file": "/nonexistent.pem"}},
        {"name": "e", "type": "imap", "owner": "jane", "graph": good},
        {"name": "f", "type": "graph", "owner": "jane", "graph": {**good, "graph_url": "http://graph.example"}},
    ], "smtp": {"transport": "graph"}}, tmp_path) == [
        'abook.toml: mailboxes[0].graph: type "graph" needs a [mailboxes.graph] table with tenant, client_id, a '
        "client_secret or certificate_file, and mailbox",
        "abook.toml: mailboxes[1].graph.tenant: expected the directory (tenant) id, a GUID, or a domain such as "
        "\"contoso.onmicrosoft.com\", got 'contoso'",
        'abook.toml: mailboxes[1].graph.client_id: expected the application (client) id, a GUID such as '
        '"6a7b8c9d-1234-4000-8000-0000000ab00c" (not the secret, nor its id)',
        "abook.toml: mailboxes[1].graph.mailbox: expected the mailbox's address such as \"jane@contoso.com\", got 'jane'",
        f"abook.toml: mailboxes[2].graph.certificate_file: {tmp_path / 'key-only.pem'} must hold the private key and "
        "its certificate (PEM), or be a .pfx/.p12 file",
        "abook.toml: mailboxes[3].graph.certificate_file: cannot read /nonexistent.pem: No such file or directory",
        "abook.toml: mailboxes[3].graph.client_secret: give either client_secret (or client_secret_file) or "
        "certificate_file",
        'abook.toml: mailboxes[4].graph: a [mailboxes.graph] table is only for type "graph", not \'imap\'',
        "abook.toml: mailboxes[5].graph.graph_url: expected an https URL, got 'http://graph.example'",
        'abook.toml: smtp.graph: transport "graph" needs an [smtp.graph] table with tenant, client_id and a '
        "client_secret or certificate_file",
    ]


def test_ldap_workers_need_a_config_file() -> None:
    """The worker processes read the config file again: a config built without one (a program calling
    parse_config) is refused when it is built, not when WorkerPool starts (issue 15, item 4)."""
    assert _problems({"ldap": {"workers": 2}}) == [
        "abook.toml: ldap.workers: LDAP workers read the config file: load the config from a file"]
    parse_config({"ldap": {"workers": 2}}, config_file="/etc/abook/abook.toml")
