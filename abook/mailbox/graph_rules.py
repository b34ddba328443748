"""The forwarding rule the forward mailbox needs, deployed through Microsoft Graph ``messageRules``.

A user or queue whose incoming method is ``forward`` has its received mail tracked only if their own
mailbox forwards it, as an attachment, to the forward mailbox. ``abook mailbox deploy-rule`` puts that
rule in place: one Inbox rule named ``RULE_NAME`` with ``forwardAsAttachmentTo`` the forward mailbox, no
conditions, enabled. Our rule is recognised by its name; the user's other rules are never touched.

Per mailbox the plan is: create it (absent), repair it (present but disabled, forwarding elsewhere, or
with conditions someone added; duplicates of ours are removed), leave it (in place), or with ``--remove``
delete it. Reading every mailbox's rules and writing the changes go through ``$batch``, 20 requests per
round trip. A second run changes nothing. Needs the application permission MailboxSettings.ReadWrite.
``decide`` is shared with the EWS backend (ews_rules.py), which converts its rules to Graph's shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import quote

from abook.mailbox.graph_client import GraphClient

RULE_NAME = "abook: forward to the CRM"


@dataclass(frozen=True)
class Change:
    mailbox: str
    #: "create", "repair", "remove", "keep" (in place, or with --remove: absent), "error"
    action: str
    detail: str = ""
    #: what carries it out: ("create", None), ("update", rule id), ("delete", rule id)
    ops: tuple[tuple[str, Optional[str]], ...] = ()


def desired(forward_to: str) -> dict[str, Any]:
    return {"displayName": RULE_NAME, "sequence": 1, "isEnabled": True, "conditions": {}, "exceptions": {},
            "actions": {"forwardAsAttachmentTo": [{"emailAddress": {"address": forward_to}}],
                        "stopProcessingRules": False}}


def _in_place(rule: dict[str, Any], forward_to: str) -> bool:
    targets = [(r.get("emailAddress") or {}).get("address", "").lower()
               for r in (rule.get("actions") or {}).get("forwardAsAttachmentTo") or []]
    other_actions = {k for k, v in (rule.get("actions") or {}).items()
                     if v and k not in ("forwardAsAttachmentTo", "stopProcessingRules")}
    return (rule.get("isEnabled") is True and targets == [forward_to.lower()] and not other_actions
            and not any(rule.get("conditions") or {}) and not any(v for v in (rule.get("exceptions") or {}).values()))


def decide(mailbox: str, rules: list[dict[str, Any]], forward_to: str, remove: bool) -> Change:
    """What one mailbox needs, from its rules in Graph's shape (the EWS backend converts its own to it)."""
    ours = [r for r in rules if r.get("displayName") == RULE_NAME]
    if remove:
        if ours:
            return Change(mailbox, "remove", "", tuple(("delete", r["id"]) for r in ours))
        return Change(mailbox, "keep", "no rule")
    extra = tuple(("delete", r["id"]) for r in ours[1:])
    if not ours:
        return Change(mailbox, "create", f"forward as attachment to {forward_to}", (("create", None),))
    if not _in_place(ours[0], forward_to) or extra:
        return Change(mailbox, "repair", _why(ours[0], forward_to, len(extra)), (("update", ours[0]["id"]),) + extra)
    return Change(mailbox, "keep", "rule in place")


def _path(mailbox: str) -> str:
    return f"/users/{quote(mailbox, safe='@')}/mailFolders/inbox/messageRules"


def plan(client: GraphClient, mailboxes: list[str], forward_to: str, remove: bool) -> list[Change]:
    """What each mailbox needs (reads only: every mailbox's rules in $batch round trips)."""
    replies = client.batch([{"id": str(n), "method": "GET", "url": _path(mb)} for n, mb in enumerate(mailboxes)],
                           check=False)
    changes = []
    for n, mailbox in enumerate(mailboxes):
        reply = replies[str(n)]
        if reply["status"] >= 400:
            changes.append(Change(mailbox, "error", str(client.error_of_reply(reply))))
        else:
            changes.append(decide(mailbox, reply["body"].get("value", []), forward_to, remove))
    return changes


def _why(rule: dict[str, Any], forward_to: str, duplicates: int) -> str:
    reasons = []
    if rule.get("isEnabled") is not True:
        reasons.append("disabled")
    if not _in_place({**rule, "isEnabled": True}, forward_to):
        reasons.append("forwards elsewhere or has conditions")
    if duplicates:
        reasons.append(f"{duplicates} duplicate(s)")
    return ", ".join(reasons)


def apply(client: GraphClient, changes: list[Change], forward_to: str) -> list[Change]:
    """Carry the changes out (in $batch round trips); a mailbox whose write failed comes back as "error"."""
    requests_: list[dict[str, Any]] = []
    owner: dict[str, int] = {}
    for i, change in enumerate(changes):
        path = _path(change.mailbox)
        for op, rule_id in change.ops:
            rid = str(len(requests_))
            request: dict[str, Any] = {"id": rid, "method": {"create": "POST", "update": "PATCH", "delete": "DELETE"}[op],
                                       "url": path if rule_id is None else f"{path}/{rule_id}"}
            if op != "delete":
                request.update(body=desired(forward_to), headers={"Content-Type": "application/json"})
            requests_.append(request)
            owner[rid] = i
    replies = client.batch(requests_, check=False) if requests_ else {}
    out = list(changes)
    for rid, reply in replies.items():
        if reply["status"] >= 400:
            i = owner[rid]
            out[i] = Change(changes[i].mailbox, "error", str(client.error_of_reply(reply)))
    return out
