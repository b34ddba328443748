"""CardDAV and CalDAV (RFC 6352, RFC 4791) mailboxes: Radicale, Nextcloud, SOGo, iCloud.

One collection per entity: an address book for contacts, a calendar for appointments and one for tasks
(created on first use when missing). Items are resources (``<uuid>.vcf`` / ``<uuid>.ics``) addressed by
their href; the HTTP ETag is the change key.

* Changes: ``sync-collection`` (RFC 6578) from the saved sync token; a rejected token
  (``valid-sync-token``) raises CursorInvalid, and the engine lists everything again.
* Fetch: ``addressbook-multiget`` / ``calendar-multiget``; create: PUT with ``If-None-Match: *``;
  update: GET, change the mapped properties (the rest of the resource stays), PUT with ``If-Match``;
  delete: DELETE with ``If-Match``. 412 means StaleItem, 404 ItemGone.
* vCard through ``vobject``, iCalendar through ``icalendar`` (``vcard.py``, ``ical.py``); WebDAV's XML
  through ElementTree. HTTP through ``requests`` with Basic authentication, a timeout, and the
  configured CA file.
* A recurring event is listed as its occurrences (``series.py``): the sync token carries the window's
  day, so the first sync of a day lists everything again; changed resources are read during the listing
  to expand them (kept by ETag, so an unchanged series is not read twice).
* Errors at the edge: 401 -> AuthFailed; connection failures and 5xx -> Unavailable; 403/400/415 on a
  write -> ItemRejected (that item only).

This class is the IPimStore with the series cache; the WebDAV requests and the collections are dav_http.py.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import Callable, Optional
from urllib.parse import urljoin

import requests
from twisted.logger import Logger
from zope.interface import implementer

from abook.mailbox.pim import ical, series, vcard
from abook.mailbox.pim.dav_http import SUFFIX, TYPE, DavClient, href_path
from abook.mailbox.pim.interfaces import Changes, IPimStore, Item, ItemGone, Listed, StaleItem
from abook.mailbox.pim.schema import Values

ENTITIES = ("contact", "appointment", "task")


@implementer(IPimStore)
class DavMailbox(DavClient):
    log = Logger()
    entities = ENTITIES

    def __init__(self, collections: dict[str, str], username: str, password: str, *, timeout: float = 30.0,
                 ca_file: Optional[str] = None, create_missing: bool = True,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 horizon_days: int = series.HORIZON_DAYS, lookback_days: int = series.LOOKBACK_DAYS) -> None:
        super().__init__(collections, username, password, timeout=timeout, ca_file=ca_file,
                         create_missing=create_missing)
        self.entities = tuple(e for e in ENTITIES if e in self.collections)  # type: ignore[misc]
        self.clock = clock
        self.horizon_days = horizon_days
        self.lookback_days = lookback_days
        #: href -> (ETag, window day, occurrences or None for a resource that is no series)
        self._series: dict[str, tuple[str, str, Optional[list[Item]]]] = {}

    def __repr__(self) -> str:
        return f"<DavMailbox {self._username} {sorted(self.collections.values())}>"

    # -- IPimStore

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        if entity != "appointment":
            return self._changes(entity, token)
        win = self._window()
        day, _, server_token = (token or "").partition("|")
        changes = self._changes(entity, server_token if token and day == win.day else None)
        listed: list[Listed] = []
        deleted = list(changes.deleted)
        for gone in deleted:
            self._series.pop(gone, None)
        for i in range(0, len(changes.changed), 100):
            chunk = changes.changed[i:i + 100]
            occurrences = self._occurrences({x.id: x.etag for x in chunk if not self._known_single(x, win)}, win)
            for x in chunk:
                if occurrences.get(x.id) is None:
                    listed.append(x)
                else:
                    listed += [Listed(it.id, it.etag) for it in occurrences[x.id]]  # type: ignore[union-attr]
                    deleted.append(x.id)  # its occurrences are listed in full (series.drop_series)
        return Changes(tuple(listed), tuple(deleted) if not changes.complete else (),
                       f"{win.day}|{changes.token or ''}", complete=changes.complete,
                       extra={series.FROM_KEY: win.day})

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        if not ids:
            return []
        split = [series.split_id(i) for i in ids]
        if any(rid is not None for _, rid in split):
            win = self._window()
            wanted = set(ids)
            singles = [i for i, rid in split if rid is None]
            found = self._occurrences({s: None for s, rid in split if rid is not None}, win)
            out = [it for its in found.values() for it in its or () if it.id in wanted]
            return out + (self.get_blocking(entity, singles) if singles else [])
        return self._multiget(entity, ids)

    def _multiget(self, entity: str, ids: list[str], raw: Optional[dict[str, tuple[str, str]]] = None) -> list[Item]:
        out = []
        for href, etag, text in self._report(entity, ids):
            if raw is not None:
                raw[href] = (etag, text)
                continue
            item = self._item(entity, href, etag, text)
            if item is not None:
                out.append(item)
        return out

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        url = self._collection(entity)
        name = f"{uuid.uuid4()}"
        text = self._write(entity, values, uid=values.get("uid") or name, crm_id=crm_id, base=None)
        href = urljoin(url, name + SUFFIX[entity])
        r = self._request("PUT", href, text, {"Content-Type": TYPE[entity], "If-None-Match": "*"},
                          ok=(200, 201, 204), rejected=(400, 403, 409, 412, 415))
        return Listed(href_path(href), r.headers.get("ETag") or self._etag_of(href))

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        series_id, rid = series.split_id(item_id)
        if rid is not None:
            return self._update_occurrence(series_id, rid, etag, values)
        href = self._href(item_id)
        r = self._request("GET", href, None, {}, ok=(200,), gone=(404, 410))
        current = r.headers.get("ETag")
        if current is not None and current != etag:
            raise StaleItem(f"{item_id} changed since it was read")
        uid = self._uid(entity, r.text)
        text = self._write(entity, values, uid=uid, crm_id=crm_id, base=r.text)
        r = self._request("PUT", href, text, {"Content-Type": TYPE[entity], "If-Match": etag},
                          ok=(200, 201, 204), gone=(404, 410), stale=(412,), rejected=(400, 403, 409, 415))
        if r.status_code == 412:
            raise StaleItem(f"{item_id} changed since it was read")
        return Listed(item_id, r.headers.get("ETag") or self._etag_of(href))

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        series_id, rid = series.split_id(item_id)
        if rid is not None:
            self._delete_occurrence(series_id, rid, etag)
            return
        headers = {"If-Match": etag} if etag else {}
        r = self._request("DELETE", self._href(item_id), None, headers, ok=(200, 204), gone=(404, 410), stale=(412,),
                          quiet_gone=True)
        if r.status_code == 412:
            raise StaleItem(f"{item_id} changed since it was read")

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        listed = self.changes_blocking(entity, None).changed
        for i in range(0, len(listed), 100):
            for item in self.get_blocking(entity, [x.id for x in listed[i:i + 100]]):
                if item.crm_id == crm_id:
                    return Listed(item.id, item.etag)
        return None

    def project(self, entity: str, values: Values) -> dict[str, Optional[str]]:
        text = self._write(entity, values, uid=values.get("uid") or "projection", crm_id=None, base=None)
        item = self._item(entity, "", "", text)
        assert item is not None
        out = dict(item.values)
        if entity == "appointment" and not values.get("uid"):
            out["uid"] = None
        return out

    def close_blocking(self) -> None:
        self._session.close()

    # -- recurring series

    def _window(self) -> series.Window:
        return series.window(self.clock(), self.horizon_days, self.lookback_days)

    def _known_single(self, x: Listed, win: series.Window) -> bool:
        cached = self._series.get(x.id)
        return cached is not None and cached[0] == x.etag and cached[2] is None

    def _occurrences(self, hrefs: dict[str, Optional[str]], win: series.Window) -> dict[str, Optional[list[Item]]]:
        """href -> its occurrences in ``win`` (None: not a recurring event), reading what the cache lacks
        (``hrefs``: href -> the ETag listed, None to read it in any case)."""
        out: dict[str, Optional[list[Item]]] = {}
        raw: dict[str, tuple[str, str]] = {}
        missing = [h for h, etag in hrefs.items() if etag is None or h not in self._series
                   or self._series[h][:2] != (etag, win.day)]
        if missing:
            self._multiget("appointment", missing, raw)
        for href in hrefs:
            if href in raw:
                http_etag, text = raw[href]
                self._series[href] = (http_etag, win.day, self._expand(href, text, win))
            elif href not in self._series or href in missing:
                continue  # gone
            out[href] = self._series[href][2]
        return out

    def _expand(self, href: str, text: str, win: series.Window) -> Optional[list[Item]]:
        try:
            occurrences = ical.read_occurrences(text, win)
        except Exception as e:  # noqa: BLE001 - one unreadable resource must not stop the listing
            self.log.warn("{href}: cannot read this appointment: {error}", href=href, error=str(e)[:200])
            return None
        if occurrences is None:
            return None
        return [Item(series.occurrence_id(href, rid), series.content_etag(values, categories), values, None,
                     categories, values.get("uid")) for rid, values, categories in occurrences]

    def _read_occurrence(self, series_id: str, rid: str, etag: Optional[str]) -> tuple[requests.Response, series.Window]:
        href = self._href(series_id)
        r = self._request("GET", href, None, {}, ok=(200,), gone=(404, 410))
        win = series.covering(self._window(), rid)  # it may lie behind the window, linked from before
        items = self._expand(series_id, r.text, win) or []
        item = next((it for it in items if it.id == series.occurrence_id(series_id, rid)), None)
        if item is None:
            raise ItemGone(f"{series_id} has no occurrence {rid}")
        if etag is not None and item.etag != etag:
            raise StaleItem(f"{series_id} occurrence {rid} changed since it was read")
        return r, win

    def _update_occurrence(self, series_id: str, rid: str, etag: str, values: Values) -> Listed:
        r, win = self._read_occurrence(series_id, rid, etag)
        if not values:
            return Listed(series.occurrence_id(series_id, rid), etag)  # an occurrence carries no CRM id of its own
        text = ical.write_occurrence(r.text, rid, values, win)
        self._put_series(series_id, r, text)
        item = next(it for it in self._expand(series_id, text, win) or []
                    if it.id == series.occurrence_id(series_id, rid))
        return Listed(item.id, item.etag)

    def _delete_occurrence(self, series_id: str, rid: str, etag: Optional[str]) -> None:
        try:
            r, _ = self._read_occurrence(series_id, rid, etag)
        except ItemGone:
            return
        self._put_series(series_id, r, ical.delete_occurrence(r.text, rid))

    def _put_series(self, series_id: str, current: requests.Response, text: str) -> None:
        headers = {"Content-Type": TYPE["appointment"]}
        if current.headers.get("ETag"):
            headers["If-Match"] = current.headers["ETag"]
        r = self._request("PUT", self._href(series_id), text, headers, ok=(200, 201, 204), gone=(404, 410),
                          stale=(412,), rejected=(400, 403, 409, 415))
        if r.status_code == 412:
            raise StaleItem(f"{series_id} changed since it was read")

    # -- inside

    @staticmethod
    def _write(entity: str, values: Values, *, uid: str, crm_id: Optional[str], base: Optional[str]) -> str:
        if entity == "contact":
            return vcard.write_card(values, uid=uid, crm_id=crm_id, base=base)
        return ical.write_calendar(entity, values, uid=uid, crm_id=crm_id, base=base)

    def _item(self, entity: str, href: str, etag: str, text: str) -> Optional[Item]:
        try:
            if entity == "contact":
                values, crm_id, categories, uid = vcard.read_card(text)
                return Item(href, etag, values, crm_id, categories, None)
            wanted = "appointment" if entity == "appointment" else "task"
            for kind, values, crm_id, categories, uid in ical.read_calendar(text):
                if kind == wanted:
                    return Item(href, etag, values, crm_id, categories, uid)
            return None
        except Exception as e:  # noqa: BLE001 - one unreadable resource must not stop the listing
            self.log.warn("{href}: cannot read this {entity}: {error}", href=href, entity=entity, error=str(e)[:200])
            return None

    @staticmethod
    def _uid(entity: str, text: str) -> str:
        if entity == "contact":
            return vcard.read_card(text)[3] or str(uuid.uuid4())
        return ical.read_calendar(text)[0][4] or str(uuid.uuid4())

def collections_for(template: dict[str, str], user: str, email: str) -> dict[str, str]:
    """``{"contact": "https://dav.example.com/{user}/contacts/"}`` filled in for one user."""
    return {e: url.format(user=user, email=email) for e, url in template.items()}


__all__ = ["DavMailbox", "collections_for"]
