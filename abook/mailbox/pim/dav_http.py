"""WebDAV requests on a user's CardDAV and CalDAV collections (part of ``dav.DavMailbox``): the collections
checked once and created when missing, ``sync-collection`` (RFC 6578), the multiget REPORTs, and every
request through ``_request``, which turns HTTP answers into abook's errors at this edge (401 -> AuthFailed;
connection failures, 429 and 5xx -> Unavailable; the statuses a caller names as gone, stale or rejected ->
ItemGone, its own handling, ItemRejected)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Optional
from urllib.parse import urljoin, urlsplit

import requests

from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxError, MailboxMissing, Unavailable
from abook.mailbox.pim.interfaces import Changes, ItemGone, ItemRejected, Listed

D = "DAV:"
CARD = "urn:ietf:params:xml:ns:carddav"
CAL = "urn:ietf:params:xml:ns:caldav"
SUFFIX = {"contact": ".vcf", "appointment": ".ics", "task": ".ics"}
TYPE = {"contact": "text/vcard; charset=utf-8", "appointment": "text/calendar; charset=utf-8",
        "task": "text/calendar; charset=utf-8"}


def _q(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class DavClient:
    """One user's collections (entity -> URL) on a DAV server, reached with Basic authentication."""

    def __init__(self, collections: dict[str, str], username: str, password: str, *, timeout: float,
                 ca_file: Optional[str], create_missing: bool) -> None:
        self.collections = {e: u if u.endswith("/") else u + "/" for e, u in collections.items()}
        self._session = requests.Session()
        self._session.auth = (username, password)
        if ca_file:
            self._session.verify = ca_file
        self._timeout = timeout
        self._create_missing = create_missing
        self._checked: set[str] = set()
        self._username = username

    def _changes(self, entity: str, token: Optional[str]) -> Changes:
        url = self._collection(entity)
        body = (f'<?xml version="1.0" encoding="utf-8"?><D:sync-collection xmlns:D="DAV:">'
                f"<D:sync-token>{xml_escape(token or '')}</D:sync-token><D:sync-level>1</D:sync-level>"
                "<D:prop><D:getetag/></D:prop></D:sync-collection>")
        r = self._request("REPORT", url, body, {"Depth": "1"}, ok=(207,), stale=(403, 409, 412))
        if r.status_code in (403, 409, 412):
            if token is None:
                raise MailboxError(f"{url}: the server does not offer sync-collection ({r.status_code})")
            raise CursorInvalid(f"{url}: the sync token was rejected ({r.status_code})")
        root = ET.fromstring(r.content)
        changed, deleted = [], []
        for resp in root.iter(_q(D, "response")):
            href = resp.findtext(_q(D, "href")) or ""
            if not href.endswith(SUFFIX[entity]):
                continue  # the collection itself
            status = resp.findtext(_q(D, "status")) or ""
            etag = resp.findtext(f"{_q(D, 'propstat')}/{_q(D, 'prop')}/{_q(D, 'getetag')}")
            if " 404 " in status or etag is None:
                deleted.append(href_path(href))
            else:
                changed.append(Listed(href_path(href), etag))
        new_token = root.findtext(_q(D, "sync-token"))
        return Changes(tuple(changed), tuple(deleted), new_token, complete=token is None)

    def _report(self, entity: str, ids: list[str]) -> list[tuple[str, str, str]]:
        """``addressbook-multiget`` / ``calendar-multiget`` of ``ids``: (href, ETag, text) of each resource
        still there."""
        url = self._collection(entity)
        if entity == "contact":
            body = ('<?xml version="1.0" encoding="utf-8"?><C:addressbook-multiget xmlns:D="DAV:" '
                    f'xmlns:C="{CARD}"><D:prop><D:getetag/><C:address-data/></D:prop>')
        else:
            body = ('<?xml version="1.0" encoding="utf-8"?><C:calendar-multiget xmlns:D="DAV:" '
                    f'xmlns:C="{CAL}"><D:prop><D:getetag/><C:calendar-data/></D:prop>')
        body += "".join(f"<D:href>{xml_escape(i)}</D:href>" for i in ids)
        body += "</C:addressbook-multiget>" if entity == "contact" else "</C:calendar-multiget>"
        r = self._request("REPORT", url, body, {"Depth": "1"}, ok=(207,))
        out: list[tuple[str, str, str]] = []
        data_tag = _q(CARD, "address-data") if entity == "contact" else _q(CAL, "calendar-data")
        for resp in ET.fromstring(r.content).iter(_q(D, "response")):
            href = href_path(resp.findtext(_q(D, "href")) or "")
            prop = resp.find(f"{_q(D, 'propstat')}/{_q(D, 'prop')}")
            if prop is None or prop.find(data_tag) is None or not (prop.findtext(data_tag) or "").strip():
                continue  # gone since it was listed
            out.append((href, prop.findtext(_q(D, "getetag")) or "", prop.findtext(data_tag) or ""))
        return out

    def _href(self, item_id: str) -> str:
        any_collection = next(iter(self.collections.values()))
        return urljoin(any_collection, item_id)

    def _etag_of(self, href: str) -> str:
        r = self._request("HEAD", href, None, {}, ok=(200,))
        return r.headers.get("ETag") or ""

    def _collection(self, entity: str) -> str:
        if entity not in self.collections:
            raise MailboxMissing(f"no {entity} collection is configured")
        url = self.collections[entity]
        if url in self._checked:
            return url
        r = self._request("PROPFIND", url, '<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop>'
                          "<D:resourcetype/></D:prop></D:propfind>", {"Depth": "0"}, ok=(207,), gone=(404,),
                          quiet_gone=True)
        if r.status_code == 404:
            if not self._create_missing:
                raise MailboxMissing(f"{url} does not exist")
            self._make(entity, url)
        self._checked.add(url)
        return url

    def _make(self, entity: str, url: str) -> None:
        if entity == "contact":
            body = (f'<?xml version="1.0"?><D:mkcol xmlns:D="DAV:" xmlns:C="{CARD}"><D:set><D:prop><D:resourcetype>'
                    "<D:collection/><C:addressbook/></D:resourcetype></D:prop></D:set></D:mkcol>")
            self._request("MKCOL", url, body, {}, ok=(201,))
        else:
            comp = "VEVENT" if entity == "appointment" else "VTODO"
            body = (f'<?xml version="1.0"?><C:mkcalendar xmlns:D="DAV:" xmlns:C="{CAL}"><D:set><D:prop>'
                    f'<C:supported-calendar-component-set><C:comp name="{comp}"/></C:supported-calendar-component-set>'
                    "</D:prop></D:set></C:mkcalendar>")
            self._request("MKCALENDAR", url, body, {}, ok=(201,))

    def _request(self, method: str, url: str, body: Optional[str], headers: dict[str, str], *, ok: tuple[int, ...],
                 gone: tuple[int, ...] = (), stale: tuple[int, ...] = (), rejected: tuple[int, ...] = (),
                 quiet_gone: bool = False) -> requests.Response:
        hdrs = dict(headers)
        if body is not None and "Content-Type" not in hdrs:
            hdrs["Content-Type"] = "application/xml; charset=utf-8"
        try:
            r = self._session.request(method, url, data=body.encode("utf-8") if body is not None else None,
                                      headers=hdrs, timeout=self._timeout)
        except requests.RequestException as e:
            raise Unavailable(f"{_origin(url)}: {type(e).__name__}") from None
        if r.status_code in ok or r.status_code in stale:
            return r
        if r.status_code in gone:
            if quiet_gone:
                return r
            raise ItemGone(f"{method} {href_path(url)}: {r.status_code}")
        if r.status_code == 401:
            raise AuthFailed(f"{_origin(url)} refused the credentials of {self._username}")
        if r.status_code in rejected:
            raise ItemRejected(f"{method} {href_path(url)}: the server answered {r.status_code}")
        if r.status_code == 404:
            raise MailboxMissing(f"{href_path(url)} does not exist")
        if r.status_code >= 500 or r.status_code == 429:
            retry = r.headers.get("Retry-After")
            raise Unavailable(f"{method} {_origin(url)}: {r.status_code}",
                              retry_after=float(retry) if retry and retry.isdigit() else None)
        raise MailboxError(f"{method} {href_path(url)}: unexpected answer {r.status_code}")


def href_path(href: str) -> str:
    return urlsplit(href).path if "://" in href else href


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"


def xml_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
