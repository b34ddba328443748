"""Contacts, appointments and tasks of an Exchange Online mailbox through Microsoft Graph (blocking, on the
``mail`` pool). Appointments are graph_events.py (``calendarView/delta`` over a rolling window), tasks
graph_todo.py (Microsoft To Do, the CRM id in a ``linkedResource``); contacts are here:

- Changes: ``/users/{mailbox}/contactFolders/contacts/contacts/delta``, every page followed to its
  ``@odata.deltaLink``, which is the token (stored whole by the engine once it has applied the changes).
  An entry seen twice keeps its last form; ``@removed`` entries are deletions; an id both changed and
  removed in one round (Graph promises no order) is looked up to decide which. 410 -> CursorInvalid: the
  engine lists everything again and matches by link, so nothing is duplicated and nothing deleted.
- Reading: ``GET /contacts/{id}`` with the extended properties expanded, several ids per ``$batch``.
- Writing: ``POST`` / ``PATCH`` with ``If-Match: <@odata.etag>`` (412 -> StaleItem) / ``DELETE``.
- Fields: Graph's own properties where they hold one value each; the phone numbers, the three e-mail
  addresses and the anniversary as Outlook's MAPI properties (single-value extended properties), because
  Graph's ``businessPhones``/``homePhones``/``emailAddresses`` are lists in which clearing the first entry
  would move the second into its place. The CRM id is the EWS backend's property
  (``String {9d1e8f4a-...} Name abookCrmId``), so a mailbox moved from EWS to Graph keeps its links.
- ``Prefer: IdType="ImmutableId"`` on every request (graph_client.py), so ids survive folder moves.
Verified by replay only (tests/graph/pim_routes.py, event_routes.py, todo_routes.py), not against a tenant.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Callable, Optional
from urllib.parse import quote

from zope.interface import implementer

from abook.config.mail import GraphApp
from abook.mailbox.errors import MailboxError, MessageGone
from abook.mailbox.graph_client import GraphClient, auth_for
from abook.mailbox.pim.graph_common import CRM_ID, DeltaRound, fetch, write
from abook.mailbox.pim.graph_events import GraphEvents, Window
from abook.mailbox.pim.graph_todo import GraphTodo
from abook.mailbox.pim.interfaces import Changes, IPimStore, Item, ItemGone, Listed
from abook.mailbox.pim.schema import Values, normalise

_ADDRESS = "{00062004-0000-0000-C000-000000000046}"  # PSETID_Address
NATIVE = {"fullname": "displayName", "firstname": "givenName", "middlename": "middleName", "lastname": "surname",
          "nickname": "nickName", "jobtitle": "jobTitle", "department": "department", "company_name": "companyName",
          "assistantname": "assistantName", "managername": "manager", "spousesname": "spouseName",
          "websiteurl": "businessHomePage", "mobilephone": "mobilePhone", "description": "personalNotes"}
MAPI = {"telephone1": "String 0x3A08", "business2": "String 0x3A1B", "company": "String 0x3A57",
        "fax": "String 0x3A24", "telephone2": "String 0x3A09", "home2": "String 0x3A2F",
        "telephone3": "String 0x3A1F", "pager": "String 0x3A21", "assistantphone": "String 0x3A2E",
        "emailaddress1": f"String {_ADDRESS} Id 0x8083", "emailaddress2": f"String {_ADDRESS} Id 0x8093",
        "emailaddress3": f"String {_ADDRESS} Id 0x80A3", "anniversary": "SystemTime 0x3A41"}
ADDRESS = {"address1_street": "street", "address1_city": "city", "address1_stateorprovince": "state",
           "address1_postalcode": "postalCode", "address1_country": "countryOrRegion"}
_EXPAND = "singleValueExtendedProperties($filter=" + " or ".join(f"id eq '{p}'" for p in [CRM_ID, *MAPI.values()]) + ")"


def _moment(date_text: Optional[str]) -> Optional[str]:
    return f"{date_text}T00:00:00Z" if date_text else None


@implementer(IPimStore)
class GraphPimStore:
    entities = ("contact", "appointment", "task")

    def __init__(self, app: GraphApp, address: str, *, ca_file: Optional[str] = None, timeout: float = 30.0,
                 window: Window = Window(), clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.address = address
        self.client = GraphClient(auth_for(app, ca_file, timeout), f"PIM items of {address}", threading.Event().wait)
        self._folder = f"/users/{quote(address, safe='@')}/contactFolders/contacts/contacts"
        self.events = GraphEvents(self.client, address, window, clock)
        self.todo = GraphTodo(self.client, address)

    def __repr__(self) -> str:
        return f"<GraphPimStore {self.address}>"

    def _check(self, entity: str) -> None:
        if entity not in self.entities:
            raise MailboxError(f"{self.address}: no {entity}s through Graph")

    # -- IPimStore

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        """Every page of the round. Graph does not promise an order and may repeat an entry: an id both
        changed and removed in one round is looked up, and is a change if it is still there, else a
        deletion; a repeated change keeps its last etag."""
        self._check(entity)
        if entity != "contact":
            return self.events.changes(token) if entity == "appointment" else self.todo.changes(token)
        r = DeltaRound(self.client, token or f"{self._folder}/delta?$select=displayName", "contacts")
        changed = {i: Listed(i, e["@odata.etag"]) for i, e in r.changed.items()}
        both = [i for i in changed if i in r.removed]
        there = {item.id: Listed(item.id, item.etag) for item in self.get_blocking(entity, both)} if both else {}
        for item_id in both:
            if item_id in there:
                changed[item_id] = there[item_id]
            else:
                del changed[item_id]
        return Changes(tuple(changed.values()), tuple(i for i in r.removed if i not in there), r.delta_link,
                       complete=token is None)

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        self._check(entity)
        if entity != "contact":
            return self.events.get(ids) if entity == "appointment" else self.todo.get(ids)
        found = fetch(self.client, {i: f"{self._item_path(i)}?$expand={quote(_EXPAND)}" for i in ids}) if ids else {}
        return [self._item(found[i]) for i in ids if i in found]  # gone since listed: left out

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        self._check(entity)
        if entity != "contact":
            return self.events.create(values, crm_id, notify) if entity == "appointment" else \
                self.todo.create(values, crm_id)
        body = self._body(normalise(entity, values), None, creating=True)
        if crm_id:
            body["singleValueExtendedProperties"].append({"id": CRM_ID, "value": crm_id})
        return self._listed(self.client.json("POST", self._folder, json=body))

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        self._check(entity)
        if entity != "contact":
            part = self.events if entity == "appointment" else self.todo
            return part.update(item_id, etag, values, crm_id)
        current = None
        given = {k for k in values}
        if given & set(ADDRESS) and not set(ADDRESS) <= given:  # Graph replaces the whole address
            (current,) = self.get_blocking(entity, [item_id]) or [None]
            if current is None:
                raise ItemGone(f"{self.address}: contact {item_id} is gone")
        body = self._body(dict(values), current.values if current else None, creating=False)
        if crm_id is not None:
            body["singleValueExtendedProperties"].append({"id": CRM_ID, "value": crm_id})
        if not body["singleValueExtendedProperties"]:
            del body["singleValueExtendedProperties"]
        if not body:
            return Listed(item_id, etag)
        return self._listed(write(self.client, "PATCH", self._item_path(item_id), etag, f"contact {item_id}",
                                  json=body))

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        self._check(entity)
        if entity != "contact":
            return self.events.delete(item_id, notify) if entity == "appointment" else self.todo.delete(item_id)
        try:
            self.client.request("DELETE", self._item_path(item_id))
        except MessageGone:
            return  # already gone

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        self._check(entity)
        if entity != "contact":
            return self.events.find(crm_id) if entity == "appointment" else self.todo.find(crm_id)
        value = crm_id.replace("'", "''")
        flt = f"singleValueExtendedProperties/Any(ep: ep/id eq '{CRM_ID}' and ep/value eq '{value}')"
        found = self.client.json("GET", f"{self._folder}?$select=displayName&$filter={quote(flt)}")
        for entry in found.get("value", []):
            return self._listed(entry)
        return None

    def project(self, entity: str, values: Values) -> dict[str, Optional[str]]:
        if entity == "appointment":
            return self.events.project(values, self.address)
        if entity == "task":
            return self.todo.project(values)
        out = normalise(entity, values)
        if entity == "contact" and not out["fullname"]:  # as _body names a new contact
            out["fullname"] = _display_name(out)
        return out

    def close_blocking(self) -> None:
        """Nothing to release: the app's token and HTTP session are shared."""

    # -- Graph contact <-> values

    def _item_path(self, item_id: str) -> str:
        return f"/users/{quote(self.address, safe='@')}/contacts/{quote(item_id)}"

    @staticmethod
    def _listed(resource: dict[str, Any]) -> Listed:
        return Listed(resource["id"], resource["@odata.etag"])

    def _body(self, values: dict[str, Optional[str]], current: Optional[Values], creating: bool) -> dict[str, Any]:
        """The JSON setting ``values`` (a creation: every field; an update: the given ones)."""
        if creating and not values.get("fullname"):
            values = {**values, "fullname": _display_name(values)}
        body: dict[str, Any] = {NATIVE[k]: v for k, v in values.items() if k in NATIVE}
        if "birthdate" in values:
            body["birthday"] = _moment(values["birthdate"])
        if "childrensnames" in values:
            text = values["childrensnames"]
            body["children"] = [c.strip() for c in text.split(";") if c.strip()] if text else []
        if set(values) & set(ADDRESS):
            merged = {k: values.get(k, (current or {}).get(k)) for k in ADDRESS}
            body["businessAddress"] = {ADDRESS[k]: v or "" for k, v in merged.items()}
        props = []
        for name, prop in MAPI.items():
            if name in values and (values[name] or not creating):
                value = values[name] or ""
                props.append({"id": prop, "value": _moment(value) if name == "anniversary" and value else value})
        body["singleValueExtendedProperties"] = props
        return body

    def _item(self, r: dict[str, Any]) -> Item:
        props = {p["id"].lower(): p.get("value") for p in r.get("singleValueExtendedProperties") or []}
        v: dict[str, object] = {name: r.get(attr) for name, attr in NATIVE.items()}
        for name, prop in MAPI.items():
            v[name] = props.get(prop.lower()) or None
        if v["anniversary"]:
            v["anniversary"] = str(v["anniversary"])[:10]
        v["birthdate"] = str(r["birthday"])[:10] if r.get("birthday") else None
        v["childrensnames"] = "; ".join(r["children"]) if r.get("children") else None
        address = r.get("businessAddress") or {}
        v.update({name: address.get(attr) or None for name, attr in ADDRESS.items()})
        return Item(r["id"], r["@odata.etag"], normalise("contact", v), props.get(CRM_ID.lower()) or None,
                    tuple(r.get("categories") or ()))


def _display_name(values: Values) -> str:
    names = [values.get("firstname"), values.get("middlename"), values.get("lastname")]
    return " ".join(n for n in names if n) or values.get("emailaddress1") or "?"
