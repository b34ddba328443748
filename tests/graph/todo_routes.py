"""The Graph responder's Microsoft To Do (learn.microsoft.com "todoTaskList", "todoTask resource type",
"todoTask: delta", "Create todoTask", "Update todoTask", "linkedResource resource type", "Create
linkedResource"):

- ``GET /users/{id}/todo/lists``: the default list (``wellknownListName: "defaultList"``) and the
  flagged-e-mail list, each mailbox's own;
- ``GET /users/{id}/todo/lists/{list}/tasks/delta`` (pim_delta.py), ``GET .../tasks`` (pages of 10,
  ``$expand=linkedResources``), ``POST .../tasks`` (``linkedResources`` may come with the task);
- ``GET``/``PATCH``/``DELETE .../tasks/{id}`` (``If-Match`` -> 412 when stale);
- ``POST .../tasks/{id}/linkedResources``: 403 for an app-only token, as documented ("Application: not
  supported"); linked resources reach a task only with its creation then.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from tests.graph import pim_delta
from tests.graph.store import new_id

if TYPE_CHECKING:
    from tests.graph.responder import GraphResponder, Reply


@dataclass
class Task:
    id: str
    mailbox: str
    seq: int
    data: dict[str, Any] = field(default_factory=dict)
    linked: list[dict[str, str]] = field(default_factory=list)
    deleted: bool = False
    change_key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def resource(self, expand: bool = False) -> dict[str, Any]:
        out = {"@odata.etag": self.etag, "id": self.id, "importance": "normal", "status": "notStarted",
               "isReminderOn": False, "title": "", "categories": [], "body": {"content": "", "contentType": "text"},
               **self.data}
        if expand:
            out["linkedResources"] = [dict(x) for x in self.linked]
        return out


def _lists(address: str) -> list[dict[str, Any]]:
    return [{"@odata.etag": 'W/"l1"', "displayName": "Flagged Emails", "isOwner": True, "isShared": False,
             "wellknownListName": "flaggedEmails", "id": f"flagged-{address}"},
            {"@odata.etag": 'W/"l2"', "displayName": "Tasks", "isOwner": True, "isShared": False,
             "wellknownListName": "defaultList", "id": f"AAMkTasks-{address}"}]


def tasks(g: "GraphResponder") -> dict[str, Task]:
    return g.store.__dict__.setdefault("tasks", {})  # type: ignore[no-any-return]


def _write(t: Task, data: dict[str, Any]) -> None:
    for x in data.pop("linkedResources", []):
        t.linked.append({"id": uuid.uuid4().hex, "webUrl": x.get("webUrl"), **x})
    if data.get("status") == "completed" and t.data.get("status") != "completed":
        t.data["completedDateTime"] = {"dateTime": "2026-12-07T00:00:00.0000000", "timeZone": "UTC"}
    elif "status" in data and data["status"] != "completed":
        t.data.pop("completedDateTime", None)
    for k, v in data.items():
        if v is None:
            t.data.pop(k, None)
        else:
            t.data[k] = v


def route(g: "GraphResponder", address: str, parts: list[str], method: str, q: dict[str, str],
          headers: dict[str, str], body: bytes) -> Optional["Reply"]:
    from tests.graph.responder import _error, _json

    if parts[0] != "todo":
        return None
    if parts == ["todo", "lists"] and method == "GET":
        return _json(200, {"value": _lists(address)})
    if parts[1:2] != ["lists"] or len(parts) < 4 or parts[3] != "tasks":
        return None
    if parts[2] not in {x["id"] for x in _lists(address)}:
        return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    list_id, rest = parts[2], parts[4:]
    mine = [t for t in tasks(g).values() if t.mailbox == f"{address}|{list_id}" and not t.deleted]
    if rest == ["delta"] and method == "GET":
        def members() -> list[tuple[str, int, dict[str, Any]]]:
            return [(t.id, t.seq, t.resource()) for t in tasks(g).values()
                    if t.mailbox == f"{address}|{list_id}" and not t.deleted]

        scope = pim_delta.Scope(address, ("todo", list_id), members,
                                f"/users/{address}/todo/lists/{list_id}/tasks/delta", "todoTask")
        return pim_delta.reply(g, scope, q, headers)
    if not rest:
        if method == "POST":
            t = Task(new_id(), f"{address}|{list_id}", g.store.tick())
            _write(t, json.loads(body))
            tasks(g)[t.id] = t
            return _json(201, t.resource(expand=True))
        if method == "GET":
            skip = int(q.get("$skip", 0))
            page: dict[str, Any] = {"value": [t.resource("linkedResources" in q.get("$expand", ""))
                                              for t in mine[skip:skip + 10]]}
            if skip + 10 < len(mine):
                page["@odata.nextLink"] = g.link(f"/users/{address}/todo/lists/{list_id}/tasks",
                                                 **{k: v for k, v in q.items() if k != "$skip"}, **{"$skip": str(skip + 10)})
            return _json(200, page)
        return None
    t = tasks(g).get(rest[0])
    if t is None or t.deleted or t.mailbox != f"{address}|{list_id}":
        return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    if rest[1:] == ["linkedResources"] and method == "POST":
        return _error(403, "ErrorAccessDenied", "Access is denied. Check credentials and try again.")
    if rest[1:]:
        return _error(400, "BadRequest", "unsupported segment")
    if method == "GET":
        return _json(200, t.resource("linkedResources" in q.get("$expand", "")))
    if method in ("PATCH", "DELETE") and headers.get("If-Match") not in (None, "*", t.etag):
        return _error(412, "PreconditionFailed", "The item has been changed since it was read.")
    if method == "PATCH":
        _write(t, json.loads(body))
        t.change_key = uuid.uuid4().hex
        t.seq = g.store.tick()
        return _json(200, t.resource())
    if method == "DELETE":
        t.deleted = True
        g.store.tick()
        return 204, {}, b""
    return _error(405, "ErrorInvalidRequest", "method not allowed")
