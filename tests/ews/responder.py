"""An EWS SOAP responder on 127.0.0.1 for the "replay" tests: exchangelib talks to it over real HTTP.

It answers the operations abook's EWS backend sends, in the request and response shapes Microsoft
documents for Exchange Web Services (learn.microsoft.com, "SyncFolderItems operation", "GetItem
operation (email message)", "UpdateItem operation", "DeleteItem operation", "EWS throttling in
Exchange" for the ErrorServerBusy SOAP fault with BackOffMilliseconds):

- SyncFolderItems: ``m:SyncFolderItemsResponseMessage`` with ``m:SyncState``,
  ``m:IncludesLastItemInRange`` and ``m:Changes`` (``t:Create`` / ``t:Update`` / ``t:Delete``);
- GetItem: ``t:Message`` with ``t:ItemId`` and the requested ``t:MimeContent`` / ``t:Categories`` /
  ``t:ExtendedProperty``;
- UpdateItem: ``t:SetItemField`` / ``t:DeleteItemField`` on ``item:Categories`` and ``t:ExtendedFieldURI``;
- DeleteItem: ``MoveToDeletedItems``;
- GetInboxRules / UpdateInboxRules (tests/ews/rules.py).

State is an in-memory store of mailboxes (items with ids, change keys, MIME, categories, extended
properties, read state), so tests assert on what a second client would see. HTTP Basic credentials are
checked (401 otherwise), impersonation headers recorded, and ``busy(back_off_ms)`` makes the next
request fail with the documented ErrorServerBusy fault. Every request is logged with its time.
"""

from __future__ import annotations

import base64
import itertools
import ssl
import threading
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional
from xml.sax.saxutils import escape, quoteattr

from tests.ews.rules import InboxRules

S = "http://schemas.xmlsoap.org/soap/envelope/"
M = "http://schemas.microsoft.com/exchange/services/2006/messages"
T = "http://schemas.microsoft.com/exchange/services/2006/types"
E = "http://schemas.microsoft.com/exchange/services/2006/errors"
PATH = "/EWS/Exchange.asmx"


@dataclass
class Item:
    id: str
    mailbox: str
    mime: bytes
    created: int
    modified: int
    changekey: str = field(default_factory=lambda: base64.b64encode(uuid.uuid4().bytes).decode())
    categories: list[str] = field(default_factory=list)
    #: (property set, name, type) -> value text
    extended: dict[tuple[str, str, str], str] = field(default_factory=dict)
    is_read: bool = False
    deleted: Optional[int] = None


@dataclass
class Request:
    operation: str
    at: float
    impersonated: Optional[str]
    body: ET.Element


class EwsResponder:
    def __init__(self, credentials: dict[str, str], tls: Optional[ssl.SSLContext] = None) -> None:
        self.credentials = dict(credentials)
        self.mailboxes: dict[str, list[Item]] = {}
        self.items: dict[str, Item] = {}
        self.requests: list[Request] = []
        self._seq = itertools.count(1)
        self._counter = 0
        self._busy: list[int] = []
        self._lock = threading.Lock()
        self.inbox_rules = InboxRules()
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait for delayed ACKs

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                status, body, extra = responder.handle(self.path, self.headers.get("Authorization"), data)
                self.send_response(status)
                self.send_header("Content-Type", "text/xml; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        if tls is not None:  # HTTPS: the TLS handshake happens as each connection is accepted
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}{PATH}"
        self._thread = threading.Thread(target=self.server.serve_forever, name="ews-responder", daemon=True)

    def start(self) -> "EwsResponder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    # -- test controls

    def add_mailbox(self, address: str) -> None:
        with self._lock:
            self.mailboxes.setdefault(address.lower(), [])

    def deliver(self, address: str, mime: bytes) -> Item:
        with self._lock:
            self._counter += 1
            item_id = base64.b64encode(b"AAMk" + uuid.uuid4().bytes + uuid.uuid4().bytes).decode()
            item = Item(item_id, address.lower(), mime, self._counter, self._counter)
            self.mailboxes[address.lower()].append(item)
            self.items[item_id] = item
            return item

    def busy(self, back_off_ms: int, times: int = 1) -> None:
        """The next ``times`` requests fail with ErrorServerBusy asking to back off ``back_off_ms``."""
        with self._lock:
            self._busy += [back_off_ms] * times

    def operations(self) -> list[str]:
        return [r.operation for r in self.requests]

    # -- HTTP

    def handle(self, path: str, authorization: Optional[str], data: bytes) -> tuple[int, bytes, dict[str, str]]:
        if path != PATH:
            return 404, b"", {}
        if not self._authorized(authorization):
            return 401, b"", {"WWW-Authenticate": 'Basic realm="127.0.0.1"'}
        envelope = ET.fromstring(data)
        body = envelope.find(f"{{{S}}}Body")
        assert body is not None and len(body), "no SOAP body"
        operation = body[0]
        name = operation.tag.split("}")[1]
        imp = envelope.find(f".//{{{T}}}ExchangeImpersonation//{{{T}}}PrimarySmtpAddress")
        with self._lock:
            self.requests.append(Request(name, time.monotonic(), imp.text if imp is not None else None, operation))
            if self._busy:
                return 500, self._busy_fault(self._busy.pop(0)), {}
            if name in ("GetInboxRules", "UpdateInboxRules"):  # tests/ews/rules.py
                return 200, self.inbox_rules.answer(name, operation, imp.text if imp is not None else None), {}
            handler = getattr(self, "_" + name, None)
            if handler is None:
                return 500, _fault("ErrorInvalidRequest", f"the replay responder does not answer {name}"), {}
            return 200, _envelope(name, handler(operation)), {}

    def _authorized(self, authorization: Optional[str]) -> bool:
        if not authorization or not authorization.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(authorization[6:]).decode().partition(":")
        return self.credentials.get(user) == password

    @staticmethod
    def _busy_fault(back_off_ms: int) -> bytes:
        return _fault("ErrorServerBusy", "The server cannot service this request right now. Try again later.",
                      f'<t:MessageXml xmlns:t="{T}"><t:Value Name="BackOffMilliseconds">{back_off_ms}</t:Value>'
                      "</t:MessageXml>")

    # -- operations (called with the lock held)

    def _SyncFolderItems(self, op: ET.Element) -> str:  # noqa: N802 (EWS operation name)
        folder = op.find(f"{{{M}}}SyncFolderId/{{{T}}}DistinguishedFolderId")
        address_el = op.find(f"{{{M}}}SyncFolderId//{{{T}}}EmailAddress")
        address = (address_el.text or "").lower() if address_el is not None else ""
        state_el = op.find(f"{{{M}}}SyncState")
        limit = int(op.findtext(f"{{{M}}}MaxChangesReturned") or "100")
        tag = "SyncFolderItemsResponseMessage"
        # Exchange serialises SyncState and IncludesLastItemInRange in error answers too (exchangelib reads them
        # before it looks at ResponseClass).
        sync_error = "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
        if address not in self.mailboxes:
            return _error(tag, "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.", sync_error)
        if folder is None or folder.get("Id") != "inbox":
            return _error(tag, "ErrorFolderNotFound", "The specified folder could not be found in the store.",
                          sync_error)
        since = 0
        if state_el is not None and state_el.text:
            try:
                kind, box, n = base64.b64decode(state_el.text).decode().split("|")
                assert kind == "replay-sync" and box == address
                since = int(n)
            except (ValueError, AssertionError, UnicodeDecodeError):
                return _error(tag, "ErrorInvalidSyncStateData", "Synchronization state data is corrupt or otherwise invalid.",
                              sync_error)
        events: list[tuple[int, str]] = []
        for item in self.mailboxes[address]:
            if item.deleted is not None:
                if item.created <= since < item.deleted:
                    events.append((item.deleted, f"<t:Delete><t:ItemId Id={quoteattr(item.id)}/></t:Delete>"))
            elif item.created > since:
                events.append((item.created, f"<t:Create>{self._message(item, size=True)}</t:Create>"))
            elif item.modified > since:
                events.append((item.modified, f"<t:Update>{self._message(item, size=True)}</t:Update>"))
        events.sort()
        page = events[:limit]
        last = len(events) <= limit
        new_since = self._counter if last else page[-1][0]
        state = base64.b64encode(f"replay-sync|{address}|{new_since}".encode()).decode()
        return (
            f'<m:{tag} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
            f"<m:SyncState>{state}</m:SyncState><m:IncludesLastItemInRange>{'true' if last else 'false'}"
            f"</m:IncludesLastItemInRange><m:Changes>{''.join(e for _, e in page)}</m:Changes></m:{tag}>"
        )

    def _GetItem(self, op: ET.Element) -> str:  # noqa: N802
        wanted = {f.get("FieldURI") for f in op.iter(f"{{{T}}}FieldURI")}
        ext = [(f.get("DistinguishedPropertySetId"), f.get("PropertyName"), f.get("PropertyType"))
               for f in op.iter(f"{{{T}}}ExtendedFieldURI")]
        out = []
        for item_id in op.iter(f"{{{T}}}ItemId"):
            item = self.items.get(item_id.get("Id", ""))
            if item is None or item.deleted is not None:
                out.append(_error("GetItemResponseMessage", "ErrorItemNotFound",
                                  "The specified object was not found in the store.", "<m:Items/>"))
                continue
            out.append(
                '<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
                f"<m:Items>{self._message(item, mime='item:MimeContent' in wanted, categories='item:Categories' in wanted, extended=ext)}"
                "</m:Items></m:GetItemResponseMessage>"
            )
        return "".join(out)

    def _UpdateItem(self, op: ET.Element) -> str:  # noqa: N802
        out = []
        for change in op.iter(f"{{{T}}}ItemChange"):
            item_id = change.find(f"{{{T}}}ItemId")
            item = self.items.get(item_id.get("Id", "") if item_id is not None else "")
            if item is None or item.deleted is not None:
                out.append(_error("UpdateItemResponseMessage", "ErrorItemNotFound",
                                  "The specified object was not found in the store.", "<m:Items/>"))
                continue
            for update in change.find(f"{{{T}}}Updates") or []:
                kind = update.tag.split("}")[1]
                uri = update.find(f"{{{T}}}FieldURI")
                ext = update.find(f"{{{T}}}ExtendedFieldURI")
                if uri is not None and uri.get("FieldURI") == "item:Categories":
                    item.categories = [s.text or "" for s in update.iter(f"{{{T}}}String")] if kind == "SetItemField" else []
                elif ext is not None:
                    key = (ext.get("DistinguishedPropertySetId"), ext.get("PropertyName"), ext.get("PropertyType"))
                    if kind == "SetItemField":
                        item.extended[key] = update.findtext(f".//{{{T}}}Value") or ""
                    else:
                        item.extended.pop(key, None)
                else:
                    return _error("UpdateItemResponseMessage", "ErrorInvalidPropertySet",
                                  f"the replay responder does not update {ET.tostring(update)[:80]!r}")
            self._counter += 1
            item.modified = self._counter
            item.changekey = base64.b64encode(uuid.uuid4().bytes).decode()
            out.append(
                '<m:UpdateItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
                f"<m:Items><t:Message><t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/>"
                "</t:Message></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults>"
                "</m:UpdateItemResponseMessage>"
            )
        return "".join(out)

    def _DeleteItem(self, op: ET.Element) -> str:  # noqa: N802
        out = []
        for item_id in op.iter(f"{{{T}}}ItemId"):
            item = self.items.get(item_id.get("Id", ""))
            if item is None or item.deleted is not None:
                out.append(_error("DeleteItemResponseMessage", "ErrorItemNotFound",
                                  "The specified object was not found in the store."))
                continue
            self._counter += 1
            item.deleted = self._counter
            out.append('<m:DeleteItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
                       "</m:DeleteItemResponseMessage>")
        return "".join(out)

    @staticmethod
    def _message(item: Item, mime: bool = False, size: bool = False, categories: bool = False,
                 extended: list[tuple[Optional[str], Optional[str], Optional[str]]] = ()) -> str:  # type: ignore[assignment]
        parts = []
        if mime:
            parts.append(f'<t:MimeContent CharacterSet="UTF-8">{base64.b64encode(item.mime).decode()}</t:MimeContent>')
        parts.append(f"<t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/>")
        if size:
            parts.append(f"<t:Size>{len(item.mime)}</t:Size>")
        if categories and item.categories:
            parts.append("<t:Categories>" + "".join(f"<t:String>{escape(c)}</t:String>" for c in item.categories)
                         + "</t:Categories>")
        for key in extended:
            if key in item.extended:
                pset, name, ptype = key
                parts.append(
                    f"<t:ExtendedProperty><t:ExtendedFieldURI DistinguishedPropertySetId={quoteattr(pset or '')} "
                    f"PropertyName={quoteattr(name or '')} PropertyType={quoteattr(ptype or '')}/>"
                    f"<t:Value>{escape(item.extended[key])}</t:Value></t:ExtendedProperty>"
                )
        return "<t:Message>" + "".join(parts) + "</t:Message>"


def _envelope(operation: str, messages: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Header>'
        f'<h:ServerVersionInfo MajorVersion="15" MinorVersion="1" MajorBuildNumber="2507" MinorBuildNumber="6" '
        f'Version="V2017_07_11" xmlns:h="{T}"/></s:Header><s:Body>'
        f'<m:{operation}Response xmlns:m="{M}" xmlns:t="{T}"><m:ResponseMessages>{messages}</m:ResponseMessages>'
        f"</m:{operation}Response></s:Body></s:Envelope>"
    ).encode()


def _error(tag: str, code: str, text: str, extra: str = "") -> str:
    return (f'<m:{tag} ResponseClass="Error"><m:MessageText>{escape(text)}</m:MessageText>'
            f"<m:ResponseCode>{code}</m:ResponseCode><m:DescriptiveLinkKey>0</m:DescriptiveLinkKey>{extra}</m:{tag}>")


def _fault(code: str, text: str, message_xml: str = "") -> bytes:
    return (
        f'<?xml version="1.0" encoding="utf-8"?><s:Envelope xmlns:s="{S}"><s:Body><s:Fault>'
        f'<faultcode xmlns:a="{T}">a:{code}</faultcode><faultstring xml:lang="en-US">{escape(text)}</faultstring>'
        f'<detail><e:ResponseCode xmlns:e="{E}">{code}</e:ResponseCode><e:Message xmlns:e="{E}">{escape(text)}'
        f"</e:Message>{message_xml}</detail></s:Fault></s:Body></s:Envelope>"
    ).encode()
