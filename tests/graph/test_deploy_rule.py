"""Replay: ``abook mailbox deploy-rule`` puts the forward-as-attachment Inbox rule in place through Graph
``messageRules`` on the responder: created, repaired, left alone on a second run, listed by --dry-run,
removed with --remove; the users' own rules untouched; reads and writes in $batch round trips."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from abook.mailbox import graph_client
from abook.mailbox.graph_rules import RULE_NAME
from abook.store.models import Queue, SystemUser
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer
from tests.integration.test_router_daemon import _abook, _init
from tests.unit.routing.conftest import seed_org

FORWARD = "crm-forward@example.com"


@pytest.fixture
def site(tmp_path: Path, graph_server: GraphServer) -> Any:
    graph_client._auths.clear()
    r = graph_server.responder
    for address in ("bob@example.com", "support@example.com", FORWARD, "jane@example.com"):
        r.add_mailbox(address)
        r.store.mailboxes[address].rules.clear()
    cfg, store = _init(tmp_path, (
        f'[[mailboxes]]\nname = "forward"\ntype = "graph"\nrole = "forward"\nca_file = "{graph_server.ca_file}"\n'
        f'[mailboxes.graph]\ntenant = "{TENANT}"\nclient_id = "{CLIENT_ID}"\nclient_secret = "{CLIENT_SECRET}"\n'
        f'mailbox = "{FORWARD}"\nauthority_host = "{r.base}"\ngraph_url = "{r.graph_url}"\n'))
    seed_org(store)  # bob and the Support queue: incoming method forward; jane: router
    return cfg, store, r


def _ours(r: Any, address: str) -> list[dict]:
    return [rule.body for rule in r.store.mailboxes[address].rules if rule.body.get("displayName") == RULE_NAME]


def test_all_creates_then_changes_nothing_then_removes(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, store, r = site
    r.new_rule("bob@example.com", {"displayName": "Bob's newsletters", "isEnabled": True,
                                   "actions": {"moveToFolder": "Newsletters"}})
    dry = _abook(capsys, "mailbox", "deploy-rule", "--all", "--dry-run", "-c", str(cfg))
    assert dry.returncode == 0 and dry.stdout.splitlines() == [
        f"bob@example.com: would create (forward as attachment to {FORWARD})",
        f"support@example.com: would create (forward as attachment to {FORWARD})"]
    assert _ours(r, "bob@example.com") == []
    mark = len(r.requests)
    done = _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    assert done.stdout.splitlines() == [f"bob@example.com: created (forward as attachment to {FORWARD})",
                                     f"support@example.com: created (forward as attachment to {FORWARD})"]
    (rule,) = _ours(r, "bob@example.com")
    assert rule["actions"]["forwardAsAttachmentTo"] == [{"emailAddress": {"address": FORWARD}}]
    assert rule["isEnabled"] is True and len(_ours(r, "support@example.com")) == 1
    assert _ours(r, "jane@example.com") == []  # incoming method router: not hers
    # one $batch to read both mailboxes' rules, one to write (after the token)
    assert [x for x in r.since(mark) if not x.endswith("/token")] == ["POST /$batch", "GET /users/bob@example.com/"
        "mailFolders/inbox/messageRules", "GET /users/support@example.com/mailFolders/inbox/messageRules",
        "POST /$batch", "POST /users/bob@example.com/mailFolders/inbox/messageRules",
        "POST /users/support@example.com/mailFolders/inbox/messageRules"]
    mark = len(r.requests)
    again = _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    assert again.stdout.splitlines() == ["bob@example.com: unchanged (rule in place)",
                                      "support@example.com: unchanged (rule in place)"]
    assert not [x for x in r.since(mark) if x.split()[0] in ("PATCH", "DELETE") or x.endswith("/messageRules")
                and x.startswith("POST")]
    gone = _abook(capsys, "mailbox", "deploy-rule", "--all", "--remove", "-c", str(cfg))
    assert gone.stdout.splitlines() == ["bob@example.com: removed", "support@example.com: removed"]
    assert _ours(r, "bob@example.com") == [] and _ours(r, "support@example.com") == []
    assert [x.body["displayName"] for x in r.store.mailboxes["bob@example.com"].rules] == ["Bob's newsletters"]


def test_a_tampered_rule_is_repaired_and_duplicates_removed(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, store, r = site
    r.new_rule("bob@example.com", {"displayName": RULE_NAME, "isEnabled": False,
                                   "actions": {"forwardAsAttachmentTo": [{"emailAddress": {"address": "x@evil.test"}}]}})
    r.new_rule("bob@example.com", {"displayName": RULE_NAME, "isEnabled": True, "actions": {}})
    out = _abook(capsys, "mailbox", "deploy-rule", "--user", "bob", "-c", str(cfg))
    assert out.stdout.splitlines() == [
        "bob@example.com: repaired (disabled, forwards elsewhere or has conditions, 1 duplicate(s))"]
    (rule,) = _ours(r, "bob@example.com")
    assert rule["isEnabled"] is True
    assert rule["actions"]["forwardAsAttachmentTo"] == [{"emailAddress": {"address": FORWARD}}]


def test_queue_by_name_and_errors_per_mailbox(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, store, r = site
    with store.transaction() as s:
        s.execute(update(SystemUser).where(SystemUser.domainname == "bob").values(
            internalemailaddress="bob-gone@example.com"))
        s.execute(update(Queue).values(incoming_method="forward"))
    assert _abook(capsys, "mailbox", "deploy-rule", "--queue", "Support", "--to", "other@example.com",
                  "-c", str(cfg)).stdout.splitlines() == [
        "support@example.com: created (forward as attachment to other@example.com)"]
    failed = _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    assert failed.returncode == 1
    assert failed.stdout.splitlines()[0].startswith("bob-gone@example.com: FAILED (deploy-rule: Graph 404 ErrorInvalidUser")
    assert failed.stdout.splitlines()[1].startswith("support@example.com: repaired")  # --to had sent it elsewhere


def test_a_refused_app_is_one_line_without_the_secret(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, store, r = site
    cfg.write_text(cfg.read_text().replace(CLIENT_SECRET, "not-the-secret"))
    out = _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    assert out.returncode != 0 and "invalid_client" in out.stderr and "not-the-secret" not in out.stderr + out.stdout


def _rules_section(out: str) -> list[str]:
    lines = out.splitlines()
    start = next(n for n, line in enumerate(lines) if line.startswith("forwarding rules"))
    end = next((n for n in range(start + 1, len(lines)) if not lines[n].startswith("  ")), len(lines))
    return lines[start + 1:end]


def test_status_shows_each_forward_mailboxs_rule_state(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, store, r = site
    first = _abook(capsys, "status", "-c", str(cfg))
    assert first.returncode == 0
    assert _rules_section(first.stdout) == ["  bob@example.com: missing", "  support@example.com: missing"]
    _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    (bob,) = [x for x in r.store.mailboxes["bob@example.com"].rules if x.body.get("displayName") == RULE_NAME]
    bob.body["isEnabled"] = False  # the user switched it off in Outlook
    later = _abook(capsys, "status", "-c", str(cfg))
    assert _rules_section(later.stdout) == ["  bob@example.com: differs (disabled)", "  support@example.com: in place"]
    cfg.write_text(cfg.read_text().replace(CLIENT_SECRET, "not-the-secret"))
    graph_client._auths.clear()
    refused = _abook(capsys, "status", "-c", str(cfg))
    assert refused.returncode == 0 and "forwarding rules: cannot check:" in refused.stdout
    assert "not-the-secret" not in refused.stdout + refused.stderr
