"""`abook user`, `abook bu` and `abook role` as an admin types them, against a migrated SQLite store.

Passwords come in on standard input and must never come back out: not the password, not its hash (a
real pipe or pseudo-terminal in another process: tests/integration/cli/test_cmd_user_terminal.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.cli import main
from abook.passwords import verify_password
from tests.unit.cli.conftest import PASSWORD, credentials


def test_build_an_organisation_and_list_it(org) -> None:  # type: ignore[no-untyped-def]
    r = org("bu", "list")
    assert [line.split("  (")[0] for line in r.out.splitlines()] == ["Org", "  Sales", "    East"]
    r = org("role", "list")
    assert r.out.splitlines()[0].split() == ["ROLE", "ACCOUNT", "CONTACT", "LEAD", "QUEUE", "SYSTEMUSER", "EQUIPMENT"]
    assert r.out.splitlines()[1].split() == ["manager", "none", "parent_child", "none", "none", "none", "none"]
    assert r.out.splitlines()[2].split() == ["rep", "user", "user", "user", "user", "business_unit", "user"]
    r = org("role", "set", "manager", "--read", "lead=organisation")
    assert r.rc == 0 and "lead=organisation" in r.out and "contact=parent_child" in r.out


def test_add_a_user_with_a_password_from_stdin(org, config: Path) -> None:  # type: ignore[no-untyped-def]
    r = org("user", "add", "alice", "--bu", "east", "--first", "Alice", "--last", "Smith",
            "--email", "alice@example.com", "--password-stdin", stdin=PASSWORD + "\n")
    assert r.rc == 0 and r.out.startswith("added user alice (") and "to East, tracking number 1" in r.out
    creds = credentials(config, "alice@example.com")
    assert creds is not None and verify_password(creds.password_hash, PASSWORD)
    r = org("user", "add", "bob", "--bu", "Sales")
    assert r.rc == 0 and r.out.endswith("tracking number 2; no password set\n")


def test_passwd_replaces_the_password(org, config: Path) -> None:  # type: ignore[no-untyped-def]
    assert org("user", "add", "alice", "--bu", "East").rc == 0
    r = org("user", "passwd", "ALICE", "--password-stdin", stdin=PASSWORD + "\r\n")
    assert (r.rc, r.out) == (0, "password changed for alice\n")
    creds = credentials(config, "alice")
    assert verify_password(creds.password_hash, PASSWORD) and not verify_password(creds.password_hash, "x")


def test_show_and_list_users_without_secrets(org) -> None:  # type: ignore[no-untyped-def]
    org("user", "add", "alice", "--bu", "East", "--email", "alice@example.com", "--password-stdin",
        stdin=PASSWORD + "\n")
    org("user", "add", "bob", "--bu", "Sales")
    org("user", "roles", "alice", "--grant", "rep", "--grant", "manager")
    settings, note = org("user", "show", "alice@example.com").out.split("\n\n")
    shown = {k: v.strip() for k, v in (line.split(":", 1) for line in settings.splitlines())}
    assert shown["user"] == "alice" and shown["password"] == "set" and shown["tracking number"] == "1"
    assert shown["roles"] == "manager, rep" and shown["business unit"].startswith("East (")
    assert shown["address_book_matching"] == "synchronised" and shown["local_filter_scope"] == "user"
    rows = [line.split() for line in org("user", "list").out.splitlines()]
    assert rows[0] == ["USER", "NAME", "EMAIL", "BUSINESS", "UNIT", "STATE", "TRACKING", "ROLES"]
    assert rows[1] == ["alice", "alice", "alice@example.com", "East", "active", "1", "manager,", "rep"]
    assert rows[2] == ["bob", "bob", "-", "Sales", "active", "2", "(none)"]


def test_set_changes_settings(org) -> None:  # type: ignore[no-untyped-def]
    org("user", "add", "alice", "--bu", "East")
    r = org("user", "set", "alice", "tracking_option=responses", "incoming_method=router",
            "local_filter_ldap=(department=Sales)", "statecode=inactive")
    assert r.rc == 0
    assert r.out == ("updated alice: tracking_option=responses, incoming_method=router, "
                     "local_filter_ldap=(department=Sales), statecode=inactive\n")
    shown = org("user", "show", "alice").out
    assert "statecode:" in shown and " inactive\n" in shown and "(department=Sales)" in shown
    r = org("user", "roles", "alice", "--grant", "rep")
    assert (r.rc, r.out) == (0, "alice: roles rep\n")
    r = org("user", "roles", "alice", "--revoke", "rep")
    assert (r.rc, r.out) == (0, "alice: roles (none)\n")


@pytest.mark.parametrize(("argv", "stdin", "message"), [
    (["user", "show", "nobody"], "", "no user 'nobody'"),
    (["user", "add", "carol", "--bu", "Nowhere"], "", "no business unit 'Nowhere'"),
    (["user", "add", "alice", "--bu", "East"], "", "user 'alice' already exists"),
    (["user", "set", "alice", "colour=blue"], "", "unknown setting 'colour'"),
    (["user", "set", "alice", "outgoing_method=pigeon"], "", "bad value 'pigeon' for outgoing_method"),
    (["user", "set", "alice", "tracking_number=9"], "", "tracking_number is allocated once"),
    (["user", "roles", "alice", "--grant", "boss"], "", "no role 'boss'"),
    (["user", "roles", "alice"], "", "nothing to do"),
    (["user", "passwd", "alice"], "", "standard input is not a terminal"),
    (["user", "passwd", "alice", "--password-stdin"], "\n", "no password on standard input"),
    (["user", "passwd", "nobody", "--password-stdin"], PASSWORD + "\n", "no user 'nobody'"),
    (["bu", "add", "East"], "", "business unit 'East' already exists"),
    (["bu", "add", "West", "--parent", "Nowhere"], "", "no business unit 'Nowhere'"),
    (["role", "add", "x", "--read", "contact=lots"], "", "unknown read depth 'lots' for contact"),
    (["role", "add", "x", "--read", "deal=user"], "", "unknown entity 'deal'"),
    (["role", "add", "rep"], "", "role 'rep' already exists"),
    (["role", "set", "boss", "--read", "contact=user"], "", "no role 'boss'"),
])
def test_mistakes_are_one_line_and_exit_2(org, argv: list[str], stdin: str, message: str) -> None:  # type: ignore[no-untyped-def]
    org("user", "add", "alice", "--bu", "East")
    r = org(*argv, stdin=stdin)
    assert r.rc == 2 and r.out == ""
    assert r.err.startswith("abook: ") and message in r.err and r.err.count("\n") == 1


def test_a_store_that_was_never_initialised_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "abook.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "empty.sqlite3"}"\n')
    assert main(["user", "list", "-c", str(path)]) == 2
    assert "run `abook init`" in capsys.readouterr().err


def test_queues_are_added_configured_and_listed(org) -> None:  # type: ignore[no-untyped-def]
    r = org("queue", "add", "Support Desk", "--bu", "East", "--email", "help@example.com")
    assert r.rc == 0 and r.out.startswith("added queue Support Desk (") and r.out.endswith(") to East\n")
    r = org("queue", "set", "help@example.com", "incoming_method=router", "outgoing_method=router")
    assert r.rc == 0
    rows = [line.split() for line in org("queue", "list").out.splitlines()]
    assert rows == [["QUEUE", "EMAIL", "BUSINESS", "UNIT", "STATE", "TRACKING", "INCOMING", "OUTGOING"],
                    ["Support", "Desk", "help@example.com", "East", "active", "all", "router", "router"]]
    r = org("queue", "set", "Support Desk", "local_filter_scope=user")
    assert r.rc == 2 and "unknown setting 'local_filter_scope'" in r.err
