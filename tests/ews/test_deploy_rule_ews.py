"""Replay: ``abook mailbox deploy-rule`` on on-premises Exchange, through exchangelib's GetInboxRules and
UpdateInboxRules against the EWS responder: the service account impersonates each user; created, left
alone on a second run, repaired, removed; the users' own rules untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from abook.mailbox.graph_rules import RULE_NAME
from tests.ews.responder import EwsResponder
from tests.fixtures.ews import SERVICE_PASSWORD, SERVICE_USER
from tests.integration.test_router_daemon import _abook, _init
from tests.unit.routing.conftest import seed_org

FORWARD = "crm-forward@example.com"


@pytest.fixture
def site(tmp_path: Path, ews_responder: EwsResponder) -> Any:
    r = ews_responder
    for address in ("bob@example.com", "support@example.com", FORWARD):
        r.add_mailbox(address)
        r.inbox_rules.rules.pop(address, None)
    user = SERVICE_USER.replace("\\", "\\\\")
    cfg, store = _init(tmp_path, (
        f'[[mailboxes]]\nname = "forward"\ntype = "ews"\nrole = "forward"\nusername = "{user}"\n'
        f'password = "{SERVICE_PASSWORD}"\n[mailboxes.ews]\nservice_endpoint = "{r.url}"\n'
        f'primary_smtp_address = "{FORWARD}"\nauth_type = "basic"\nserver_version = "15.1.2507.6"\n'))
    seed_org(store)  # bob and the Support queue: incoming method forward
    return cfg, r


def _ours(r: EwsResponder, address: str) -> list[dict]:
    return [x for x in r.inbox_rules.of(address) if x["name"] == RULE_NAME]


def test_ews_rules_created_kept_repaired_removed(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, r = site
    r.inbox_rules.add("bob@example.com", "<t:DisplayName>Newsletters</t:DisplayName><t:Priority>1</t:Priority>"
                                         "<t:IsEnabled>true</t:IsEnabled><t:Actions><t:Delete>true</t:Delete></t:Actions>")
    dry = _abook(capsys, "mailbox", "deploy-rule", "--all", "--dry-run", "-c", str(cfg))
    assert dry.stdout.splitlines() == [f"bob@example.com: would create (forward as attachment to {FORWARD})",
                                       f"support@example.com: would create (forward as attachment to {FORWARD})"]
    assert _ours(r, "bob@example.com") == []
    mark = len(r.requests)
    done = _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    assert done.returncode == 0 and [line.split(" (")[0] for line in done.stdout.splitlines()] == [
        "bob@example.com: created", "support@example.com: created"]
    (rule,) = _ours(r, "bob@example.com")
    assert rule["enabled"] and rule["forward_as_attachment"] == [FORWARD]
    updates = [x for x in r.requests[mark:] if x.operation == "UpdateInboxRules"]
    assert [x.impersonated for x in updates] == ["bob@example.com", "support@example.com"]
    mark = len(r.requests)
    again = _abook(capsys, "mailbox", "deploy-rule", "--all", "-c", str(cfg))
    assert again.stdout.splitlines() == ["bob@example.com: unchanged (rule in place)",
                                         "support@example.com: unchanged (rule in place)"]
    assert {x.operation for x in r.requests[mark:]} == {"GetInboxRules"}  # nothing written
    # someone points it elsewhere in Outlook: repaired
    bob = r.inbox_rules.rules["bob@example.com"]
    ours = next(x for x in bob if x.findtext("{http://schemas.microsoft.com/exchange/services/2006/types}DisplayName")
                == RULE_NAME)
    for address in ours.iter("{http://schemas.microsoft.com/exchange/services/2006/types}EmailAddress"):
        address.text = "x@evil.test"
    fixed = _abook(capsys, "mailbox", "deploy-rule", "--user", "bob", "-c", str(cfg))
    assert fixed.stdout.splitlines() == ["bob@example.com: repaired (forwards elsewhere or has conditions)"]
    assert _ours(r, "bob@example.com")[0]["forward_as_attachment"] == [FORWARD]
    gone = _abook(capsys, "mailbox", "deploy-rule", "--all", "--remove", "-c", str(cfg))
    assert gone.stdout.splitlines() == ["bob@example.com: removed", "support@example.com: removed"]
    assert [x["name"] for x in r.inbox_rules.of("bob@example.com")] == ["Newsletters"]


def test_status_reads_each_rule_through_ews(site: Any, capsys: pytest.CaptureFixture[str]) -> None:
    cfg, r = site
    _abook(capsys, "mailbox", "deploy-rule", "--user", "bob", "-c", str(cfg))
    out = _abook(capsys, "status", "-c", str(cfg)).stdout.splitlines()
    start = out.index(next(line for line in out if line.startswith("forwarding rules")))
    assert out[start + 1:start + 3] == ["  bob@example.com: in place", "  support@example.com: missing"]
    mark = len(r.requests)
    quick = _abook(capsys, "status", "--no-rules", "-c", str(cfg))
    assert "forwarding rules" not in quick.stdout and len(r.requests) == mark  # Exchange not asked
