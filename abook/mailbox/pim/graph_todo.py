"""Tasks in Microsoft To Do through Microsoft Graph (part of ``graph.GraphPimStore``).

- The list is the user's default one (``GET /users/{mailbox}/todo/lists``, ``wellknownListName ==
  "defaultList"``), looked up once per store.
- Changes: ``/todo/lists/{list}/tasks/delta``, every page to its ``@odata.deltaLink`` (the token); ``@removed``
  entries are deletions, an id both changed and removed in one round is looked up; 410 -> CursorInvalid.
- To Do tasks have no extended properties: the CRM id travels in a ``linkedResource`` (``applicationName``
  "abook", ``externalId`` = the CRM id), created with the task in the same ``POST`` (app-only permissions
  may create linked resources only that way). Crash recovery (``find``) reads the list with the linked
  resources expanded and picks the task whose abook resource names the CRM id. A CRM id given later (an
  Outlook task linked to a new CRM record) is added with ``POST .../linkedResources``; where the app may not
  (403), the link is kept by abook's own table only.
- Fields: ``title``, ``body`` (text), ``importance``, ``status`` (``completed`` or not), ``categories``,
  ``startDateTime``/``dueDateTime`` as dates (To Do keeps days, not times). To Do has no percent complete:
  a completed task reads as 100, an open one as unknown. It sets ``completedDateTime`` itself when a task is
  completed, so that field is not synchronised (as EWS). The regarding record is not shown: with no
  property of abook's to say which line of the notes is its own, it could not be split off again.
- Writes: ``PATCH`` with ``If-Match`` on the task's ``@odata.etag`` (412 -> StaleItem), ``DELETE``.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import quote

from abook.mailbox.errors import AuthFailed, MailboxMissing
from abook.mailbox.graph_client import GraphClient
from abook.mailbox.pim.graph_common import DeltaRound, fetch, write
from abook.mailbox.pim.interfaces import Changes, Item, ItemGone, Listed
from abook.mailbox.pim.schema import Values, normalise

APPLICATION = "abook"


def _day(value: Optional[str]) -> Optional[dict[str, str]]:
    return {"dateTime": f"{value[:10]}T00:00:00.0000000", "timeZone": "UTC"} if value else None


class GraphTodo:
    def __init__(self, client: GraphClient, address: str) -> None:
        self.client = client
        self.address = address
        self._user = f"/users/{quote(address, safe='@')}"
        self._list: Optional[str] = None

    def _tasks(self) -> str:
        if self._list is None:
            for entry in self.client.pages(f"{self._user}/todo/lists"):
                if entry.get("wellknownListName") == "defaultList":
                    self._list = f"{self._user}/todo/lists/{quote(entry['id'])}/tasks"
                    break
            else:
                raise MailboxMissing(f"{self.client.name}: no default To Do list")
        return self._list

    def _path(self, item_id: str) -> str:
        return f"{self._tasks()}/{quote(item_id)}"

    def changes(self, token: Optional[str]) -> Changes:
        r = DeltaRound(self.client, token or f"{self._tasks()}/delta", "To Do")
        listed = {i: Listed(i, e["@odata.etag"]) for i, e in r.changed.items() if i not in r.removed}
        both = [i for i in r.removed if i in r.changed]
        there = fetch(self.client, {i: self._path(i) for i in both}) if both else {}
        listed.update({i: Listed(i, t["@odata.etag"]) for i, t in there.items()})
        deleted = tuple(i for i in r.removed if i not in there)
        return Changes(tuple(listed.values()), deleted, r.delta_link, complete=token is None)

    def get(self, ids: list[str]) -> list[Item]:
        found = fetch(self.client, {i: f"{self._path(i)}?$expand=linkedResources" for i in ids}) if ids else {}
        return [self._item(found[i]) for i in ids if i in found]

    def create(self, values: Values, crm_id: str) -> Listed:
        body = self._body(normalise("task", values), creating=True)
        if crm_id:
            body["linkedResources"] = [self._resource(crm_id)]
        r = self.client.json("POST", self._tasks(), json=body)
        return Listed(r["id"], r["@odata.etag"])

    def update(self, item_id: str, etag: str, values: Values, crm_id: Optional[str]) -> Listed:
        body = self._body(dict(values), creating=False)
        listed = Listed(item_id, etag)
        if body:
            r = write(self.client, "PATCH", self._path(item_id), etag, f"task {item_id}", json=body)
            listed = Listed(r["id"], r["@odata.etag"])
        if crm_id is not None:
            (item,) = self.get([item_id]) or [None]
            if item is None:
                raise ItemGone(f"{self.client.name}: task {item_id} is gone")
            if item.crm_id == crm_id:
                return Listed(item.id, item.etag)
            try:
                self.client.json("POST", f"{self._path(item_id)}/linkedResources", json=self._resource(crm_id))
            except AuthFailed:
                return Listed(item.id, item.etag)  # app-only: linked resources only with the task (docstring)
            (item,) = self.get([item_id]) or [None]
            if item is None:
                raise ItemGone(f"{self.client.name}: task {item_id} is gone")
            listed = Listed(item.id, item.etag)
        return listed

    def delete(self, item_id: str) -> None:
        try:
            write(self.client, "DELETE", self._path(item_id), None, f"task {item_id}")
        except ItemGone:
            return  # already gone

    def find(self, crm_id: str) -> Optional[Listed]:
        for entry in self.client.pages(f"{self._tasks()}?$expand=linkedResources"):
            if crm_id in _crm_ids(entry):
                return Listed(entry["id"], entry["@odata.etag"])
        return None

    @staticmethod
    def project(values: Values) -> dict[str, Optional[str]]:
        out = normalise("task", values)
        out["completed"] = None  # To Do sets it itself
        for name in ("startdate", "duedate"):
            if out[name]:
                out[name] = out[name][:10]  # type: ignore[index]
        out["status"] = out["status"] or "open"
        out["percentcomplete"] = "100" if out["status"] == "completed" else None
        out["prioritycode"] = out["prioritycode"] or "normal"
        out["regarding"] = None  # not shown: no property would say which line of the notes is abook's
        return out

    # -- To Do task <-> values

    @staticmethod
    def _resource(crm_id: str) -> dict[str, str]:
        return {"applicationName": APPLICATION, "displayName": "CRM record", "externalId": crm_id}

    @staticmethod
    def _body(values: dict[str, Optional[str]], creating: bool) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if "subject" in values or creating:
            body["title"] = values.get("subject") or ""
        if "description" in values:
            body["body"] = {"contentType": "text", "content": values["description"] or ""}
        for name, attr in (("startdate", "startDateTime"), ("duedate", "dueDateTime")):
            if name in values:
                body[attr] = _day(values[name])
        if "status" in values or "percentcomplete" in values:
            body["status"] = "completed" if values.get("status") == "completed" else (
                "inProgress" if int(values.get("percentcomplete") or 0) else "notStarted")
        if values.get("prioritycode"):
            body["importance"] = values["prioritycode"]
        return body

    @staticmethod
    def _item(r: dict[str, Any]) -> Item:
        body = r.get("body") or {}
        text = body.get("content")
        if text and body.get("contentType", "text").lower() == "html":
            from abook.mailbox.pim.html import html_to_text

            text = html_to_text(text)
        done = r.get("status") == "completed"
        values = normalise("task", {
            "subject": r.get("title"), "description": text,
            "startdate": ((r.get("startDateTime") or {}).get("dateTime") or "")[:10] or None,
            "duedate": ((r.get("dueDateTime") or {}).get("dateTime") or "")[:10] or None,
            "completed": None, "percentcomplete": 100 if done else None,
            "status": "completed" if done else "open", "prioritycode": (r.get("importance") or "normal").lower(),
        })
        ids = _crm_ids(r)
        return Item(r["id"], r["@odata.etag"], values, ids[-1] if ids else None, tuple(r.get("categories") or ()))


def _crm_ids(r: dict[str, Any]) -> list[str]:
    return [x["externalId"] for x in r.get("linkedResources") or []
            if x.get("applicationName") == APPLICATION and x.get("externalId")]
