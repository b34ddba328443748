"""The Graph responder's contacts (learn.microsoft.com "contact resource type", "contact: delta", "Create
contact", "Update contact", "Get singleValueLegacyExtendedProperty"): ``/users/{id}/contactFolders/contacts/
contacts`` (GET with an extended-property ``$filter``, POST, ``delta``) and ``/users/{id}/contacts/{id}`` (GET
with ``$expand=singleValueExtendedProperties``, PATCH with ``If-Match`` -> 412 when stale, DELETE).

A PATCH replaces each top-level property it names (a complex one, such as ``businessAddress``, whole);
``singleValueExtendedProperties`` are upserted by id, and an empty value removes one. Every write gives
the contact a new ``@odata.etag`` and ``changeKey`` and a place in the next delta round.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Optional

from tests.graph.store import new_id

if TYPE_CHECKING:
    from tests.graph.responder import GraphResponder, Reply

_FIND = re.compile(r"^singleValueExtendedProperties/Any\(ep: ep/id eq '(.*)' and ep/value eq '(.*)'\)$")


@dataclass
class Contact:
    id: str
    mailbox: str
    seq: int
    data: dict[str, Any]
    extended: dict[str, str] = field(default_factory=dict)
    categories: list[str] = field(default_factory=list)
    folder: str = "contacts"
    deleted: bool = False
    change_key: str = field(default_factory=lambda: uuid.uuid4().hex)

    @property
    def etag(self) -> str:
        return f'W/"{self.change_key}"'

    def resource(self, select: Optional[list[str]]) -> dict[str, Any]:
        base = {"@odata.type": "#microsoft.graph.contact", "@odata.etag": self.etag, "id": self.id,
                "changeKey": self.change_key, "categories": list(self.categories)}
        data = self.data if not select else {k: v for k, v in self.data.items() if k in select}
        return {**base, **data}


def route(g: "GraphResponder", address: str, parts: list[str], method: str, q: dict[str, str],
          headers: dict[str, str], body: bytes) -> Optional["Reply"]:
    """The reply for a contacts request, or None when the path is not one."""
    from tests.graph.responder import _error, _json

    store = g.store
    if parts[:3] == ["contactFolders", "contacts", "contacts"]:
        if parts[3:] == ["delta"] and method == "GET":
            from tests.graph.routes import _delta

            return _delta(g, address, "contacts", q, headers)
        if len(parts) == 3 and method == "POST":
            data = json.loads(body)
            c = Contact(new_id(), address, store.tick(), {})
            _write(c, data)
            store.messages[c.id] = c  # type: ignore[assignment]
            return _json(201, c.resource(None))
        if len(parts) == 3 and method == "GET":
            found = [c for c in store.in_folder(address, "contacts")]
            wanted = _FIND.match(q.get("$filter", ""))
            if wanted:
                prop, value = wanted.group(1), wanted.group(2).replace("''", "'")
                found = [c for c in found if c.extended.get(prop.lower()) == value]  # type: ignore[attr-defined]
            return _json(200, {"value": [c.resource(None) for c in found]})
        return None
    if parts[0] != "contacts" or len(parts) != 2:
        return None
    c = store.messages.get(parts[1])
    if not isinstance(c, Contact) or c.mailbox != address or c.deleted:
        return _error(404, "ErrorItemNotFound", "The specified object was not found in the store.")
    if method == "GET":
        out = c.resource(None)
        if "singleValueExtendedProperties" in q.get("$expand", ""):
            out["singleValueExtendedProperties"] = [{"id": k, "value": v} for k, v in c.extended.items()]
        return _json(200, out)
    if method in ("PATCH", "DELETE") and headers.get("If-Match") not in (None, "*", c.etag):
        return _error(412, "ErrorIrresolvableConflict", "The send or update operation could not be performed "
                                                         "because the change key passed in the request does not "
                                                         "match the current change key for the item.")
    if method == "PATCH":
        _write(c, json.loads(body))
        c.change_key = uuid.uuid4().hex
        store.touch(c)  # type: ignore[arg-type]
        return _json(200, c.resource(None))
    if method == "DELETE":
        c.deleted = True
        store.tombstones.append((address, "contacts", c.id, store.tick()))
        c.folder = "deleteditems"
        return 204, {}, b""
    return _error(405, "ErrorInvalidRequest", "method not allowed")


def write_extended(extended: dict[str, str], data: dict[str, Any]) -> None:
    """Upsert the ``singleValueExtendedProperties`` a POST or PATCH carries (by id; an empty value removes)."""
    for prop in data.pop("singleValueExtendedProperties", []):
        if prop["value"] == "":
            extended.pop(prop["id"].lower(), None)
        else:
            extended[prop["id"].lower()] = prop["value"]


def _write(c: Contact, data: dict[str, Any]) -> None:
    write_extended(c.extended, data)
    if "categories" in data:
        c.categories = list(data.pop("categories"))
    for k, v in data.items():
        if v is None or v == [] or v == "":
            c.data.pop(k, None)
        else:
            c.data[k] = v
