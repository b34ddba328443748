"""Mailboxes for the sync contract suite and state machine, with what a person or a server does to them.

``MemoryMailbox`` has these built in. ``RadicaleMailbox`` is abook's real ``DavMailbox`` on a fresh Radicale
user, plus helpers that act as another client over plain HTTP (create, edit, delete, move with WebDAV
MOVE, touch by rewriting an unmapped property), a failure injector in front of abook's calls, and
``forget_tokens``, which makes abook's next sync token one the server does not know, so the server itself
rejects it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Optional

import requests

from abook.mailbox.pim import ical, vcard
from abook.mailbox.pim.dav import DavMailbox
from abook.mailbox.pim.interfaces import Changes, Item, Listed
from abook.mailbox.pim.memory import WRITES, Failure
from abook.mailbox.pim.schema import Values
from tests.fixtures.radicale import Radicale

_SUFFIX = {"contact": ".vcf", "appointment": ".ics", "task": ".ics"}
_TYPE = {"contact": "text/vcard", "appointment": "text/calendar", "task": "text/calendar"}


@dataclass
class _Seen:
    crm_id: Optional[str]
    etag: str


class RadicaleMailbox(DavMailbox):
    def __init__(self, server: Radicale) -> None:
        user, password = server.new_user()
        self.server, self.user = server, user
        collections = {e: server.collection(user, e) for e in ("contact", "appointment", "task")}
        super().__init__(collections, user, password, timeout=20)
        self.http = requests.Session()
        self.http.auth = (user, password)
        self.calls: list[str] = []
        self.failures: list[Failure] = []
        self._forget = False

    # -- abook's calls, recorded, some made to fail

    def _call(self, op: str) -> None:
        self.calls.append(op)
        for f in self.failures:
            if f.times > 0 and f.op in (op, "any"):
                f.times -= 1
                if f.times == 0:
                    self.failures.remove(f)
                raise f.error

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        self._call("changes")
        if token is not None and self._forget:
            self._forget = False
            fake = "http://radicale.org/ns/sync/" + "0" * 64  # a token this server never issued
            day, sep, _ = token.partition("|")  # appointments: the day of the occurrence window, then the token
            token = f"{day}|{fake}" if sep else fake
        return super().changes_blocking(entity, token)

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        self._call("get")
        return super().get_blocking(entity, ids)

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        self._call("create")
        return super().create_blocking(entity, values, crm_id, notify)

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        self._call("update")
        return super().update_blocking(entity, item_id, etag, values, crm_id)

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        self._call("delete")
        return super().delete_blocking(entity, item_id, etag, notify)

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        self._call("find")
        return super().find_blocking(entity, crm_id)

    def fail_next(self, op: str, error: Exception | None = None, times: int = 1, item_id: Optional[str] = None) -> None:
        from abook.mailbox.errors import Unavailable

        self.failures.append(Failure(op, error or Unavailable(f"{op} failed (test)"), times, item_id))

    def writes(self) -> list[str]:
        return [c for c in self.calls if c in WRITES]

    def forget_tokens(self) -> None:
        self._forget = True

    # -- another client

    def _url(self, entity: str, item_id: str | None = None) -> str:
        base = self._collection(entity)
        if item_id is None:
            return base
        return base.split("/", 3)[0] + "//" + base.split("/", 3)[2] + item_id

    def _all(self, entity: str) -> list[Item]:
        listed = DavMailbox.changes_blocking(self, entity, None).changed
        return DavMailbox.get_blocking(self, entity, [x.id for x in listed]) if listed else []

    @property
    def items(self) -> dict[str, dict[str, _Seen]]:
        return {e: {i.id: _Seen(i.crm_id, i.etag) for i in self._all(e)} for e in ("contact", "appointment", "task")}

    def values(self, entity: str) -> dict[str, dict[str, Optional[str]]]:
        return {i.id: dict(i.values) for i in self._all(entity)}

    def _text(self, entity: str, values: Values, uid: str, crm_id: Optional[str], base: Optional[str],
              categories: Optional[tuple[str, ...]]) -> str:
        if entity == "contact":
            text = vcard.write_card(values, uid=uid, crm_id=crm_id, base=base)
            if categories is not None:
                import vobject

                card = vobject.readOne(text)
                card.contents.pop("categories", None)
                if categories:
                    card.add("categories").value = list(categories)
                text = card.serialize()
            return text
        text = ical.write_calendar(entity, values, uid=uid, crm_id=crm_id, base=base)
        if categories is not None:
            import icalendar

            cal = icalendar.Calendar.from_ical(text)
            for comp in cal.walk():
                if comp.name in ("VEVENT", "VTODO"):
                    comp.pop("categories", None)
                    if categories:
                        comp.add("categories", list(categories))
            text = cal.to_ical().decode()
        return text

    def user_create(self, entity: str, values: Values, categories: tuple[str, ...] = (), *,
                    crm_id: Optional[str] = None, uid: Optional[str] = None) -> str:
        name = str(uuid.uuid4())
        uid = uid or values.get("uid") or f"{name}@mailbox"
        text = self._text(entity, {**values, **({"uid": uid} if entity == "appointment" else {})}, uid, crm_id, None,
                          categories)
        path = self._collection(entity).split("://", 1)[1].split("/", 1)[1]
        item_id = "/" + path + name + _SUFFIX[entity]
        r = self.http.put(self._url(entity, item_id), data=text.encode(), headers={"Content-Type": _TYPE[entity]})
        assert r.status_code in (201, 204), r.status_code
        return item_id

    def user_update(self, entity: str, item_id: str, changes: Values,
                    categories: Optional[tuple[str, ...]] = None) -> None:
        r = self.http.get(self._url(entity, item_id))
        assert r.status_code == 200, r.status_code
        uid = (vcard.read_card(r.text)[3] if entity == "contact" else ical.read_calendar(r.text)[0][4]) or "x"
        text = self._text(entity, changes, uid, None, r.text, categories)
        assert self.http.put(self._url(entity, item_id), data=text.encode(),
                             headers={"Content-Type": _TYPE[entity]}).status_code in (201, 204)

    def user_delete(self, entity: str, item_id: str) -> None:
        assert self.http.delete(self._url(entity, item_id)).status_code in (200, 204)

    def touch(self, entity: str, item_id: str) -> None:
        """A new ETag for the same mapped content (another client rewrote a property abook does not map)."""
        r = self.http.get(self._url(entity, item_id))
        marker = f"X-OTHER-CLIENT:{uuid.uuid4().hex[:8]}\r\n"
        end = "END:VCARD" if entity == "contact" else ("END:VEVENT" if entity == "appointment" else "END:VTODO")
        text = r.text.replace(end, marker + end, 1)
        assert self.http.put(self._url(entity, item_id), data=text.encode(),
                             headers={"Content-Type": _TYPE[entity]}).status_code in (201, 204)

    def move(self, entity: str, item_id: str) -> str:
        new_id = item_id.rsplit("/", 1)[0] + f"/{uuid.uuid4()}{_SUFFIX[entity]}"
        r = self.http.request("MOVE", self._url(entity, item_id), headers={"Destination": self._url(entity, new_id)})
        assert r.status_code in (201, 204), r.status_code
        return new_id

    def destroy(self) -> None:
        for url in self.collections.values():
            self.http.delete(url)
        self.http.close()
        self.close_blocking()


