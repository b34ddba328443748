"""The Graph resources the responder answers (paths relative to /v1.0), called under its lock."""

from __future__ import annotations

import base64
import binascii
import json
import re
from typing import TYPE_CHECKING, Any, Optional

from tests.graph.store import FOLDERS, Message

if TYPE_CHECKING:
    from tests.graph.responder import GraphResponder, Reply

_USER = re.compile(r"^/users/([^/]+)(/.*)?$")
_FILTER_MID = re.compile(r"^internetMessageId eq '(.*)'$")


def route(g: "GraphResponder", method: str, path: str, query: dict[str, list[str]], headers: dict[str, str],
          body: bytes) -> "Reply":
    from tests.graph.responder import _error, _json

    if path == "/$batch" and method == "POST":
        return _batch(g, json.loads(body), headers)
    m = _USER.match(path)
    if not m:
        return _error(400, "BadRequest", f"Resource not found for the segment '{path}'.")
    address, rest = m.group(1).lower(), m.group(2) or ""
    if address in g.denied:
        return _error(403, "ErrorAccessDenied", "Access to OData is disabled: [RAOP] : Blocked by tenant "
                                                "configured AppOnly AccessPolicy settings.")
    mailbox = g.store.mailboxes.get(address)
    if mailbox is None:
        return _error(404, "ErrorInvalidUser", f"The requested user '{address}' is invalid.")
    parts = rest.strip("/").split("/")
    q = {k: v[0] for k, v in query.items()}
    from tests.graph import pim_routes

    from tests.graph import event_routes, todo_routes

    for pim in (pim_routes, event_routes, todo_routes):
        pim_reply = pim.route(g, address, parts, method, q, headers, body)
        if pim_reply is not None:
            return pim_reply

    if len(parts) == 4 and parts[0] == "mailFolders" and parts[2:] == ["messages", "delta"] and method == "GET":
        return _delta(g, address, parts[1].lower(), q, headers)
    if len(parts) == 3 and parts[0] == "mailFolders" and parts[2] == "messages" and method == "GET":
        folder = parts[1].lower()
        wanted = _FILTER_MID.match(q.get("$filter", ""))
        found = [x for x in g.store.in_folder(address, folder) if wanted is None or x.header("Message-ID") ==
                 wanted.group(1).replace("''", "'")]
        return _json(200, {"value": [x.resource(_select(q)) for x in found]})
    if parts[0] == "messages" and len(parts) >= 2:
        msg = g.store.messages.get(parts[1])
        if msg is None or msg.mailbox != address or msg.deleted:
            return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
        return _message(g, msg, parts[2:], method, q, body)
    if parts == ["sendMail"] and method == "POST":
        if not headers.get("Content-Type", "").startswith("text/plain"):
            return _error(415, "UnsupportedMediaType", "expected a MIME message")
        try:
            mime = base64.b64decode(body, validate=True)
        except binascii.Error:
            return _error(400, "ErrorMimeContentInvalidBase64String", "Invalid base64 string for MIME content.")
        mailbox.sent.append(mime)
        g.store.deliver(address, mime, "sentitems")
        return 202, {}, b""
    if parts[:3] == ["mailFolders", "inbox", "messageRules"]:
        return _rules(g, address, parts[3:], method, body)
    return _error(400, "BadRequest", f"Unsupported request {method} {path}")


def _select(q: dict[str, str]) -> Optional[list[str]]:
    return q["$select"].split(",") if "$select" in q else None


def _delta(g: "GraphResponder", address: str, folder: str, q: dict[str, str], headers: dict[str, str]) -> "Reply":
    from tests.graph.responder import _error, _json

    store = g.store
    if folder not in FOLDERS:
        return _error(404, "ErrorInvalidIdMalformed", "Id is malformed.")
    page_size = 10
    prefer = headers.get("Prefer", "")
    size = re.search(r"odata\.maxpagesize=(\d+)", prefer)
    if size:
        page_size = max(1, int(size.group(1)))
    gone = _error(410, "SyncStateNotFound", "The sync state generation is not found. The delta token is expired "
                                            "and data must be synchronized again.")
    if "$skiptoken" in q:
        token, _, offset_text = q["$skiptoken"].partition(".")
        if token in store.expired or token not in store.rounds:
            return gone
        round_, offset = store.rounds[token], int(offset_text or 0)
    else:
        if "$deltatoken" in q:
            token_q = q["$deltatoken"]
            if token_q in store.expired or token_q not in store.delta_tokens:
                return gone
            mb, f, since, select = store.delta_tokens[token_q]
            token = store.start_round(mb, f, since, select)
        else:
            token = store.start_round(address, folder, None, _select(q))
        round_, offset = store.rounds[token], 0
    from tests.graph.pim_delta import quirks

    entries = quirks(store, round_.entries[offset:offset + page_size])
    path = (f"/users/{address}/contactFolders/contacts/contacts/delta" if folder == "contacts"
            else f"/users/{address}/mailFolders/{folder}/messages/delta")
    kind = "contact" if folder == "contacts" else "message"
    page: dict[str, Any] = {"@odata.context": f"{g.graph_url}/$metadata#Collection({kind})", "value": entries}
    if offset + page_size < len(round_.entries):
        page["@odata.nextLink"] = g.link(path, **{"$skiptoken": f"{token}.{offset + page_size}"})
    else:
        page["@odata.deltaLink"] = g.link(path, **{"$deltatoken": store.issue_delta_token(round_)})
    return _json(200, page, {"Preference-Applied": f"odata.maxpagesize={page_size}"} if size else None)


def _message(g: "GraphResponder", msg: Message, rest: list[str], method: str, q: dict[str, str],
             body: bytes) -> "Reply":
    from tests.graph.responder import _error, _json

    if rest == ["$value"] and method == "GET":
        return 200, {"Content-Type": "text/plain"}, msg.mime
    if rest:
        return _error(400, "BadRequest", "unsupported segment")
    if method == "GET":
        resource = msg.resource(_select(q))
        if "singleValueExtendedProperties" in q.get("$expand", ""):
            resource["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in msg.extended.items()]
        return _json(200, resource)
    if method == "PATCH":
        change = json.loads(body)
        if "categories" in change:
            msg.categories = list(change["categories"])
        for prop in change.get("singleValueExtendedProperties", []):
            msg.extended[prop["id"]] = prop["value"]
        g.store.touch(msg)  # an update: the message shows up again in the next delta round
        return _json(200, msg.resource(None))
    if method == "DELETE":
        g.store.move(msg, "deleteditems")
        return 204, {}, b""
    return _error(405, "ErrorInvalidRequest", "method not allowed")


def _rules(g: "GraphResponder", address: str, rest: list[str], method: str, body: bytes) -> "Reply":
    from tests.graph.responder import _error, _json

    rules = g.store.mailboxes[address].rules
    if not rest:
        if method == "GET":
            return _json(200, {"value": [{"id": r.id, **r.body} for r in rules]})
        if method == "POST":
            rule = g.new_rule(address, json.loads(body))
            return _json(201, {"id": rule.id, **rule.body})
    rule = next((r for r in rules if rest and r.id == rest[0]), None)
    if rule is None:
        return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    if method == "PATCH":
        rule.body.update(json.loads(body))
        return _json(200, {"id": rule.id, **rule.body})
    if method == "DELETE":
        rules.remove(rule)
        return 204, {}, b""
    return _json(200, {"id": rule.id, **rule.body})


def _batch(g: "GraphResponder", batch: dict[str, Any], headers: dict[str, str]) -> "Reply":
    """JSON batching: each request is answered as if sent alone (with the batch's Authorization)."""
    from tests.graph.responder import _error, _json

    requests = batch.get("requests", [])
    if len(requests) > 20:
        return _error(400, "BadRequest", "Number of requests in the batch exceeds 20.")
    responses = []
    for r in requests:
        url = r["url"] if r["url"].startswith("/") else "/" + r["url"]
        body = json.dumps(r["body"]).encode() if "body" in r else b""
        sub_headers = {**headers, **r.get("headers", {})}
        status, out_headers, out = g.handle(r["method"], "/v1.0" + url, sub_headers, body)
        entry: dict[str, Any] = {"id": r["id"], "status": status, "headers": out_headers}
        if out:
            entry["body"] = json.loads(out) if out_headers.get("Content-Type") == "application/json" else out.decode()
        responses.append(entry)
    return _json(200, {"responses": responses})
