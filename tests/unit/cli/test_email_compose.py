"""`abook email compose` and `abook email list`, end to end: the CLI writes a Pending Send email with its
tracking token, the router's outgoing queue sends it to a real SMTP server (aiosmtpd on 127.0.0.1, the
same fixture as tests/integration/test_outgoing_smtp.py), and `email list` shows where each one is."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path

import pytest
from twisted.internet.task import Clock

from abook.config import load_config
from abook.routing.outgoing import OutgoingService
from abook.store import Store, make_engine
from abook.threads import SyncRunner

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning")

T0 = 1796205600.0  # Wed, 02 Dec 2026 10:00:00 GMT


@pytest.fixture
def server(smtp_server):  # type: ignore[no-untyped-def]
    return smtp_server("starttls")


@pytest.fixture
def config(tmp_path: Path, server) -> Path:  # type: ignore[no-untyped-def]
    """The CLI's config, with an [smtp] table reaching the test's SMTP server."""
    from abook.cli import main

    smtp = server.config()
    path = tmp_path / "abook.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "abook.sqlite3"}"\n[smtp]\n'
                    + "".join(f"{k} = {v!r}\n".replace("'", '"') if isinstance(v, str) else f"{k} = {v}\n"
                              for k, v in smtp.items()))
    assert main(["init", "--standard-roles", "-c", str(path)]) == 0
    return path


@pytest.fixture
def site(abook, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Jane sends through the router; Carl is a contact of Contoso; Support is a queue."""
    for argv in (["bu", "add", "Acme"],
                 ["user", "add", "jane", "--bu", "Acme", "--first", "Jane", "--last", "Doe", "--email",
                  "jane@acme.example", "--role", "Salesperson"],
                 ["user", "set", "jane", "outgoing_method=router"],
                 ["queue", "add", "Support", "--bu", "Acme", "--email", "support@acme.example"],
                 ["queue", "set", "Support", "outgoing_method=router"]):
        assert abook(*argv).rc == 0, argv
    f = tmp_path / "contacts.csv"
    f.write_text("firstname,lastname,emailaddress1\nCarl,Customer,carl@contoso.example\n"
                 "Ann,Partner,ann@partner.example\n")
    assert abook("import", str(f), "--owner", "jane").rc == 0
    f = tmp_path / "accounts.csv"
    f.write_text("name,emailaddress1\nContoso,info@contoso.example\n")
    assert abook("import", str(f), "--entity", "account", "--owner", "jane").rc == 0
    return abook


def send_due(config: Path) -> None:
    """What the daemon's router does at its next outgoing scan, on a Clock and in this thread."""
    loaded = load_config(config)
    store = Store(make_engine(loaded.store_url))
    clock = Clock()
    clock.advance(T0)
    assert loaded.smtp is not None
    service = OutgoingService(store, SyncRunner(), clock, loaded.smtp, loaded.router, loaded.tracking)
    try:
        service.startService()  # runs one scan at once
    finally:
        d = service.stopService()
        assert d.called
        store.dispose()


def test_compose_then_the_router_sends_it(site, config: Path, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    quote = tmp_path / "quote.pdf"
    quote.write_bytes(b"%PDF-1.4 quote")
    r = site("email", "compose", "--user", "jane", "--to", "contact:Carl Customer", "--cc", "ann@partner.example",
             "--bcc", "boss@elsewhere.example", "--subject", "Your quote", "--regarding", "account:Contoso",
             "--attach", str(quote), stdin="Hello Carl,\nthe quote is attached.\n")
    assert r.rc == 0 and r.err == "", r.err
    lines = r.out.splitlines()
    assert lines[0].startswith("email ") and lines[0].endswith(" pending send, tracking token CRM:0010001")
    activity_id = lines[0].split()[1]
    assert lines[1:] == ["  from Jane Doe <jane@acme.example>",
                         "  to   carl@contoso.example (contact Carl Customer)",
                         "  to   ann@partner.example (contact Ann Partner)",
                         "  to   boss@elsewhere.example"]
    listed = site("email", "list", "--state", "pending").out.splitlines()
    assert listed[0].split() == ["EMAIL", "STATE", "SINCE", "OWNER", "FROM", "TO", "TOKEN", "SUBJECT"]
    assert listed[1].split()[:2] == [activity_id, "pending"] and "CRM:0010001  Your quote" in listed[1]
    assert "carl@contoso.example +2" in listed[1]

    send_due(config)
    (got,) = server.received
    assert got.mail_from == "jane@acme.example"
    assert got.rcpt_tos == ("carl@contoso.example", "ann@partner.example", "boss@elsewhere.example")
    message = email.message_from_bytes(got.data, policy=email.policy.default)
    assert message["Subject"] == "Your quote CRM:0010001" and message["Cc"] == "ann@partner.example"
    assert "Bcc" not in message
    assert message.get_body(("plain",)).get_content() == "Hello Carl,\r\nthe quote is attached.\r\n"
    (attachment,) = message.iter_attachments()
    assert (attachment.get_filename(), attachment.get_content_type(), attachment.get_content()) == (
        "quote.pdf", "application/pdf", b"%PDF-1.4 quote")
    assert site("email", "list", "--state", "pending").out == "no emails pending\n"
    sent = site("email", "list", "--state", "sent", "--user", "jane").out.splitlines()
    assert sent[1].split()[:2] == [activity_id, "sent"]
    shown = site("email", "show", activity_id).out
    assert "regarding:    account " in shown and "token:        CRM:0010001" in shown
    assert "quote.pdf  application/pdf  14 bytes" in shown


def test_a_queue_sends_and_a_refused_recipient_fails(site, config: Path, server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    body = tmp_path / "body.txt"
    body.write_text("We are on it.\n")
    r = site("email", "compose", "--queue", "support@acme.example", "--to", "carl@contoso.example", "--subject",
             "Ticket 7", "--body", str(body))
    assert r.rc == 0 and r.out.splitlines()[1] == "  from Support <support@acme.example>"
    r = site("email", "compose", "--user", "jane", "--to", "nobody@reject.test", "--subject", "Bounce",
             stdin="x\n")
    failing = r.out.split()[1]
    send_due(config)
    assert [g.mail_from for g in server.received] == ["support@acme.example"]
    assert b"Subject: Ticket 7 CRM:0010001" in server.received[0].data  # the queue's mail is jane's: her counter
    out = site("email", "list", "--queue", "Support").out.splitlines()
    assert len(out) == 2 and out[1].split()[1] == "sent"
    out = site("email", "list", "--state", "failed").out.splitlines()
    assert out[1].split()[:2] == [failing, "failed"]
    assert out[2].startswith(f"{failing}: failed after 1 attempts: ") and "550 5.1.1 no such user" in out[2]


def test_compose_says_why_the_router_would_not_send_it(site, config: Path) -> None:  # type: ignore[no-untyped-def]
    site("user", "add", "bob", "--bu", "Acme", "--email", "bob@acme.example", "--role", "Salesperson")
    r = site("email", "compose", "--user", "bob", "--to", "carl@contoso.example", "--subject", "Hi", stdin="x\n")
    assert r.rc == 0
    assert r.err == ("warning: the router sends only email whose sender's outgoing method is router, and user "
                     "bob's is none: abook user set 'bob' outgoing_method=router\n")


@pytest.mark.parametrize(("argv", "message"), [
    (["--to", "carl@contoso.example"], "give the sender: --user NAME, or --queue NAME"),
    (["--user", "jane"], "no recipient: give --to, --cc or --bcc"),
    (["--user", "nobody", "--to", "carl@contoso.example"], "no user 'nobody'"),
    (["--user", "jane", "--to", "contact:Nobody"], "no contact 'Nobody'"),
    (["--user", "jane", "--to", "carl"], "bad recipient 'carl': expected an email address or ENTITY:NAME"),
    (["--user", "jane", "--to", "account:Contoso", "--regarding", "deal:7"], "bad --regarding 'deal:7'"),
    (["--user", "jane", "--to", "carl@contoso.example", "--attach", "/nonexistent/x.pdf"], "cannot read /nonexistent/x.pdf"),
])
def test_compose_mistakes_are_one_line(site, argv: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    r = site("email", "compose", "--subject", "S", *argv, stdin="body\n")
    assert (r.rc, r.out) == (2, "") and r.err.startswith("abook: ") and message in r.err, r.err
    assert site("email", "list").out == "no emails pending/sending/sent/failed\n"
