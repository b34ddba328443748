"""The forwarding rule the forward mailbox needs, deployed through Microsoft Graph ``messageRules``.

A user or queue whose incoming method is ``forward`` has its received mail tracked only if their own
mailbox forwards it, as an attachment, to the forward mailbox. ``abook mailbox deploy-rule`` puts that
rule in place: one Inbox rule named ``RULE_NAME`` with ``forwardAsAttachmentTo`` the forward mailbox, no
conditions, enabled. Our rule is recognised by its name; the user's other rules are never touched.

Per mailbox the plan is: create it (absent), repair it (present but disabled, forwarding elsewhere, or
with conditions someone added; duplicates of ours are removed), leave it (in place), or with ``--remove``
delete it. Reading every mailbox's rules and writing the changes go through ``$batch``, 20 requests per
round trip. A second run changes nothing. Needs the application permission MailboxSettings.ReadWrite.
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
    #: (method, url, body) requests that carry it out
    requests: tuple[tuple[str, str, Optional[dict[str, Any]]], ...] = ()


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


def plan(client: GraphClient, mailboxes: list[str], forward_to: str, remove: bool) -> list[Change]:
    """What each mailbox needs (reads only)."""
    paths = {str(n): f"/users/{quote(mb, safe='@')}/mailFolders/inbox/messageRules" for n, mb in enumerate(mailboxes)}
    replies = client.batch([{"id": n, "method": "GET", "url": p} for n, p in paths.items()], check=False)
    changes = []
    for n, mailbox in enumerate(mailboxes):
        reply, path = replies[str(n)], paths[str(n)]
        if reply["status"] >= 400:
            changes.append(Change(mailbox, "error", str(client.error_of_reply(reply))))
            continue
        ours = [r for r in reply["body"].get("value", []) if r.get("displayName") == RULE_NAME]
        if remove:
            if ours:
                changes.append(Change(mailbox, "remove", "", tuple(("DELETE", f"{path}/{r['id']}", None) for r in ours)))
            else:
                changes.append(Change(mailbox, "keep", "no rule"))
            continue
        extra = tuple(("DELETE", f"{path}/{r['id']}", None) for r in ours[1:])
        if not ours:
            changes.append(Change(mailbox, "create", f"forward as attachment to {forward_to}",
                                  (("POST", path, desired(forward_to)),)))
        elif not _in_place(ours[0], forward_to) or extra:
            changes.append(Change(mailbox, "repair", _why(ours[0], forward_to, len(extra)),
                                  (("PATCH", f"{path}/{ours[0]['id']}", desired(forward_to)),) + extra))
        else:
            changes.append(Change(mailbox, "keep", "rule in place"))
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


def apply(client: GraphClient, changes: list[Change]) -> list[Change]:
    """Carry the changes out (in $batch round trips); a mailbox whose write failed comes back as "error"."""
    requests_: list[dict[str, Any]] = []
    owner: dict[str, int] = {}
    for i, change in enumerate(changes):
        for method, url, body in change.requests:
            rid = str(len(requests_))
            request: dict[str, Any] = {"id": rid, "method": method, "url": url}
            if body is not None:
                request.update(body=body, headers={"Content-Type": "application/json"})
            requests_.append(request)
            owner[rid] = i
    replies = client.batch(requests_, check=False) if requests_ else {}
    out = list(changes)
    for rid, reply in replies.items():
        if reply["status"] >= 400:
            i = owner[rid]
            out[i] = Change(changes[i].mailbox, "error", str(client.error_of_reply(reply)))
    return out
