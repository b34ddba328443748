"""`abook status` names the users and queues whose incoming method is router but whose mailbox nothing
polls (the demo's queues used to be silently never read)."""

from __future__ import annotations

from pathlib import Path

import pytest

SECTION = "incoming method router, but nothing polls their mailbox (their mail is not tracked):"
NO_TABLE = "no [[mailboxes]] table names it as owner, and there is no [router.user_mailbox_template]"


@pytest.fixture
def routed(abook):  # type: ignore[no-untyped-def]
    for argv in (["bu", "add", "Acme"],
                 ["user", "add", "jane", "--bu", "Acme", "--email", "jane@acme.example"],
                 ["user", "add", "joe", "--bu", "Acme"],
                 ["user", "add", "kim", "--bu", "Acme", "--email", "kim@acme.example"],
                 ["user", "set", "jane", "incoming_method=router"],
                 ["user", "set", "joe", "incoming_method=router"],
                 ["queue", "add", "Support", "--bu", "Acme", "--email", "support@acme.example"],
                 ["queue", "set", "Support", "incoming_method=router"]):
        assert abook(*argv).rc == 0
    return abook


def section(out: str) -> list[str]:
    lines = out.splitlines()
    if SECTION not in lines:
        return []
    rest = lines[lines.index(SECTION) + 1:]
    return rest[:rest.index("")]


def test_status_names_router_owners_nothing_polls(routed) -> None:  # type: ignore[no-untyped-def]
    assert section(routed("status").out) == [f"  jane: {NO_TABLE}", f"  joe: {NO_TABLE}",
                                             f"  queue:support@acme.example: {NO_TABLE}"]


def test_a_mailbox_table_or_the_template_polls_them(routed, config: Path) -> None:  # type: ignore[no-untyped-def]
    base = config.read_text()
    config.write_text(base + '[[mailboxes]]\nname = "jane"\ntype = "imap"\nowner = "JANE"\n')
    assert section(routed("status").out) == [f"  joe: {NO_TABLE}", f"  queue:support@acme.example: {NO_TABLE}"]
    config.write_text(base + '[router.user_mailbox_template]\ntype = "imap"\n')
    assert section(routed("status").out) == [
        "  joe: it has no email address, which [router.user_mailbox_template] needs"]
    config.write_text(base + '[router]\nenabled = false\n[router.user_mailbox_template]\ntype = "imap"\n')
    assert section(routed("status").out) == [f"  {o}: router.enabled is false in this config"
                                             for o in ("jane", "joe", "queue:support@acme.example")]
    routed("user", "set", "jane", "incoming_method=forward")
    routed("user", "set", "joe", "statecode=inactive")
    routed("queue", "set", "Support", "incoming_method=none")
    assert section(routed("status").out) == []
