"""The forwarding rule (graph_rules.py) through EWS, for on-premises Exchange: Inbox rules with
``ForwardAsAttachmentToRecipients`` via exchangelib (GetInboxRules, UpdateInboxRules), one user at a time
through the service account's impersonation. Rules are converted to Graph's shape so ``decide`` is
shared: the same rule name, the same idea of "in place", the users' other rules untouched.
"""

from __future__ import annotations

from typing import Any

from exchangelib.properties import Actions, Address, Conditions, Exceptions, Rule

from abook.mailbox.ews import EwsSource
from abook.mailbox.graph_rules import RULE_NAME, Change, decide


def _set_fields(element: Any) -> dict[str, bool]:
    """The fields of a Conditions/Exceptions/Actions element that hold something (name -> True)."""
    if element is None:
        return {}
    return {f.name: True for f in element.FIELDS if getattr(element, f.name, None) not in (None, [], False)}


def as_graph(rule: Rule) -> dict[str, Any]:
    actions = _set_fields(rule.actions)
    actions.pop("forward_as_attachment_to_recipients", None)
    actions.pop("stop_processing_rules", None)
    targets = rule.actions.forward_as_attachment_to_recipients if rule.actions else None
    actions_graph: dict[str, Any] = {"forwardAsAttachmentTo": [{"emailAddress": {"address": a.email_address}}
                                                               for a in targets or []], **actions}
    return {"id": rule.id, "displayName": rule.display_name, "isEnabled": bool(rule.is_enabled),
            "conditions": _set_fields(rule.conditions), "exceptions": _set_fields(rule.exceptions),
            "actions": actions_graph}


def _rule(forward_to: str, rule_id: str | None = None) -> Rule:
    return Rule(id=rule_id, display_name=RULE_NAME, priority=1, is_enabled=True, conditions=Conditions(),
                exceptions=Exceptions(), actions=Actions(forward_as_attachment_to_recipients=[Address(email_address=forward_to)],
                                                         stop_processing_rules=False))


def deploy(source: EwsSource, mailboxes: list[str], forward_to: str, remove: bool, dry_run: bool) -> list[Change]:
    changes = []
    for mailbox in mailboxes:
        try:
            account = source.account_for(mailbox)
            change = decide(mailbox, [as_graph(r) for r in account.rules], forward_to, remove)
            if not dry_run:
                for op, rule_id in change.ops:
                    if op == "create":
                        account.create_rule(_rule(forward_to))
                    elif op == "update":
                        account.set_rule(_rule(forward_to, rule_id))
                    else:
                        account.delete_rule(Rule(id=rule_id, display_name=RULE_NAME, priority=1, actions=Actions()))
        except Exception as e:  # noqa: BLE001 - reported per mailbox; the others go on
            change = Change(mailbox, "error", f"{type(source.error_of(e)).__name__}: {source.error_of(e)}")
        changes.append(change)
    return changes
