"""Exchange backend through EWS (exchangelib, blocking; runs on the ``mail`` pool, never the reactor's).

- No autodiscover: the account is built from ``[mailboxes.ews]`` (service endpoint, auth type, and a
  fixed server build when given, so no version probe); impersonation by a service account, or delegate.
- Changes: one ``SyncFolderItems`` page per call, ``MaxChangesReturned = limit``, starting from the
  stored sync state. ``Folder.sync_items()`` is not used because it keeps paging until the server says
  ``IncludesLastItemInRange``, so its final state would cover more than the batch handed back; one page
  per batch keeps "the cursor covers exactly these messages". Only ``Create`` changes are new mail;
  updates (our own marking among them), read-flag changes and deletions are skipped.
- Fetch: ``GetItem`` with ``item:MimeContent`` only; the bytes are Exchange's MIME rendering.
- Mark: ``UpdateItem`` setting a PublicStrings extended property (``tracked_property``, Integer 1) and
  adding ``tracked_category`` to the item's categories (read first, so other categories stay).
- Remove: ``DeleteItem`` with ``MoveToDeletedItems`` (recoverable).
- TLS: ``ca_file`` (else the system CAs) verifies the server, through a per-server requests adapter.
- Retries: exchangelib runs with ``FailFast``; an ``ErrorServerBusy`` whose ``BackOffMilliseconds`` is at
  most ``max_retry_wait`` is waited out here (on the mail thread) and the call retried once; a longer
  one raises ``RateLimited(retry_after=back_off)`` so the router's backoff waits instead of a thread.
- Errors at the edge: UnauthorizedError -> AuthFailed; ErrorNonExistentMailbox / ErrorFolderNotFound ->
  MailboxMissing; ErrorInvalidSyncStateData -> CursorInvalid; ErrorItemNotFound -> MessageGone;
  TransportError and transient server errors -> Unavailable.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Callable, Optional, TypeVar
from urllib.parse import urlsplit

import requests.adapters

from exchangelib import DELEGATE, IMPERSONATION, Account, Configuration, Credentials, FailFast, Message
from exchangelib.items import MeetingCancellation, MeetingRequest, MeetingResponse
from exchangelib import errors as ews_errors
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.fields import FieldPath
from exchangelib.folders import Folder, Inbox, Root
from exchangelib.items import ID_ONLY
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.protocol import BaseProtocol
from exchangelib.services import SyncFolderItems
from exchangelib.transport import BASIC, DIGEST, NTLM
from exchangelib.version import Build, Version
from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import EwsOptions, MailboxConfig
from abook.mailbox._net import credentials as configured_credentials
from abook.mailbox.errors import (
    AuthFailed,
    CursorInvalid,
    MailboxError,
    MailboxMissing,
    MessageGone,
    RateLimited,
    TooLarge,
    Unavailable,
)
from abook.mailbox.interfaces import DEFAULT_LIMIT, HEAD_BYTES, Batch, IMailSource, MessageRef

T = TypeVar("T")

_AUTH = {"ntlm": NTLM, "basic": BASIC, "digest": DIGEST}
_ACCESS = {"impersonation": IMPERSONATION, "delegate": DELEGATE}
#: exchangelib logs whole SOAP documents (bodies, addresses) at DEBUG
if logging.getLogger("exchangelib").level == logging.NOTSET:
    logging.getLogger("exchangelib").setLevel(logging.WARNING)

#: item classes an Inbox holds that can be marked (meeting items are not Message subclasses in exchangelib)
_MAIL_CLASSES = (Message, MeetingRequest, MeetingResponse, MeetingCancellation)
#: Exchange returns at most 512 changes per SyncFolderItems call
MAX_CHANGES = 512



class CAFileAdapter(requests.adapters.HTTPAdapter):
    """Verifies an EWS server against the ``ca_file`` its mailbox configures (else the system CAs).

    exchangelib takes one adapter class for every server (``BaseProtocol.HTTP_ADAPTER_CLS``), so the CA
    files are looked up per (scheme, host, port) of the request.
    """

    ca_files: dict[tuple[str, str, int], str] = {}

    def send(self, request: Any, stream: bool = False, timeout: Any = None, verify: Any = True, cert: Any = None,
             proxies: Any = None) -> Any:
        if verify is not False:  # True, or the default bundle (REQUESTS_CA_BUNDLE): the mailbox's ca_file wins
            verify = self.ca_files.get(_server_of(request.url), verify)
        return super().send(request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)


def _server_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or (443 if parts.scheme == "https" else 80)


if BaseProtocol.HTTP_ADAPTER_CLS is requests.adapters.HTTPAdapter:
    BaseProtocol.HTTP_ADAPTER_CLS = CAFileAdapter

_register_lock = threading.Lock()
_registered: dict[str, str] = {}  # PublicStrings property name -> Message attribute


def tracked_attribute(property_name: str) -> str:
    """Register (once per process) the tracked-mark extended property on Message; its attribute name."""
    with _register_lock:
        if property_name in _registered:
            return _registered[property_name]
        attr = "abook_" + "".join(c if c.isalnum() else "_" for c in property_name).lower()
        prop = type(
            "TrackedMark_" + attr,
            (ExtendedProperty,),
            {"distinguished_property_set_id": "PublicStrings", "property_name": property_name,
             "property_type": "Integer"},
        )
        for cls in _MAIL_CLASSES:
            cls.register(attr, prop)
        _registered[property_name] = attr
        return attr


def _build(version: str) -> Build:
    parts = [int(p) for p in version.split(".")]
    return Build(*parts)


@implementer(IMailSource)
class EwsSource:
    log = Logger()

    def __init__(self, config: MailboxConfig, wait: Callable[[float], Any] = threading.Event().wait) -> None:
        if config.ews is None:
            raise MailboxError(f"{config.name}: an EWS mailbox needs [mailboxes.ews]")
        self._config = config
        self._ews: EwsOptions = config.ews
        self._wait = wait
        self._account: Optional[Account] = None
        self._folder: Optional[Folder] = None
        self._attr = tracked_attribute(self._ews.tracked_property)
        if config.ca_file is not None:
            if not issubclass(BaseProtocol.HTTP_ADAPTER_CLS, CAFileAdapter):
                raise MailboxError(f"{config.name}: ca_file needs exchangelib's HTTP adapter, which another part replaced")
            CAFileAdapter.ca_files[_server_of(self._ews.service_endpoint)] = config.ca_file

    def __repr__(self) -> str:
        return f"<EwsSource {self._config.name} {self._ews.primary_smtp_address} at {self._ews.service_endpoint}>"

    # -- IMailSource

    def changes_blocking(self, cursor: Optional[str], limit: int) -> Batch:
        def page() -> tuple[list[tuple[str, Any]], Optional[str], bool]:
            folder = self._inbox()
            svc = SyncFolderItems(account=folder.account)
            fields = {FieldPath(field=Message.get_field_by_fieldname("size"))}
            changes = list(svc.call(folder=folder, shape=ID_ONLY, additional_fields=fields, sync_state=cursor or None,
                                    ignore=None, max_changes_returned=min(limit, MAX_CHANGES), sync_scope=None))
            return changes, svc.sync_state, bool(svc.includes_last_item_in_range)

        changes, state, last = self._call(page)
        refs = []
        for change_type, item in changes:
            if isinstance(item, Exception):
                raise self._translate(item)
            if change_type == SyncFolderItems.CREATE:
                refs.append(MessageRef(item.id, item.size))
        self.log.debug("{mailbox}: {count} new of {changes} changes", mailbox=self._config.name, count=len(refs),
                       changes=len(changes))
        return Batch(tuple(refs), state or cursor or "", more=not last)

    def fetch_blocking(self, ref: MessageRef, limit: int = DEFAULT_LIMIT) -> bytes:
        if ref.size is not None and ref.size > limit:
            raise TooLarge(f"{self._config.name}: Exchange announced {ref.size} bytes", ref.size, announced=True)
        item = self._get(ref, ["mime_content"])
        if not item.mime_content:
            raise MailboxError(f"{self._config.name}: Exchange sent no MIME content for an item")
        raw = bytes(item.mime_content)
        if len(raw) > limit:  # Exchange's MIME rendering can be larger than the item's size
            raise TooLarge(f"{self._config.name}: Exchange sent {len(raw)} bytes", len(raw), raw[:HEAD_BYTES],
                           announced=False)
        return raw

    def mark_tracked_blocking(self, ref: MessageRef) -> None:
        category = self._ews.tracked_category

        def mark() -> None:
            item = self._get(ref, ["categories", self._attr], translate=False)
            categories = list(item.categories or [])
            if category not in categories:
                categories.append(category)
            if not hasattr(item, self._attr):
                raise MailboxError(f"{self._config.name}: cannot mark a {type(item).__name__} as tracked")
            if getattr(item, self._attr) == 1 and categories == list(item.categories or []):
                return  # already marked: write nothing
            item.categories = categories
            setattr(item, self._attr, 1)
            item.save(update_fields=["categories", self._attr])

        self._call(mark)

    def remove_blocking(self, ref: MessageRef) -> None:
        from exchangelib.items import MOVE_TO_DELETED_ITEMS

        def remove() -> None:
            account = self._inbox().account
            for result in account.bulk_delete([(ref.external_id, None)], delete_type=MOVE_TO_DELETED_ITEMS):
                if isinstance(result, ews_errors.ErrorItemNotFound):
                    return  # already gone
                if isinstance(result, Exception):
                    raise result

        self._call(remove)

    def close_blocking(self) -> None:
        """Forget the account and close the idle HTTP sessions of its server's pool.

        exchangelib shares one Protocol (session pool of ``max_connections``) per endpoint and service
        account; sessions other sources are using stay open, and the pool reopens sessions on demand.
        """
        account, self._account, self._folder = self._account, None, None
        if account is not None:
            account.protocol.close()

    def abort(self) -> None:
        """Not done for Exchange: exchangelib's HTTP connections cannot be reached from another thread; each
        read is bounded by ``timeout`` (``Protocol.TIMEOUT``) instead."""

    # -- exchangelib

    def _make_account(self) -> Account:
        return self.account_for(self._ews.primary_smtp_address)

    def account_for(self, address: str) -> Account:
        """An account on this mailbox's server and credentials for ``address`` (impersonation: any user's;
        ``abook mailbox deploy-rule`` reaches each user's rules so)."""
        c, e = self._config, self._ews
        credentials = Credentials(*configured_credentials(c))
        version = Version(build=_build(e.server_version)) if e.server_version else None
        configuration = Configuration(
            service_endpoint=e.service_endpoint, credentials=credentials, auth_type=_AUTH[e.auth_type],
            version=version, retry_policy=FailFast(), max_connections=e.max_connections,
        )
        account = Account(
            primary_smtp_address=address, credentials=credentials, config=configuration,
            autodiscover=False, access_type=_ACCESS[e.access_type], default_timezone=None,
        )
        account.protocol.TIMEOUT = c.timeout
        return account

    def _inbox(self) -> Folder:
        """The folder read, built locally for the Inbox (no GetFolder round trip), else looked up by path."""
        if self._folder is not None:
            return self._folder
        account = self._account or self._make_account()
        self._account = account
        mailbox = Mailbox(email_address=self._ews.primary_smtp_address)
        if self._config.folder.lower() == "inbox":
            root = Root(account=account, _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID,
                                                                                 mailbox=mailbox))
            self._folder = Inbox(root=root, _distinguished_id=DistinguishedFolderId(id=Inbox.DISTINGUISHED_FOLDER_ID,
                                                                                    mailbox=mailbox))
        else:
            self._folder = account.msg_folder_root // self._config.folder
        return self._folder

    def _get(self, ref: MessageRef, fields: list[str], translate: bool = True) -> Any:
        def get() -> Any:
            folder = self._inbox()
            (item,) = list(folder.account.fetch(ids=[(ref.external_id, None)], folder=folder, only_fields=fields))
            if isinstance(item, Exception):
                raise item
            return item

        return self._call(get) if translate else get()

    def _call(self, f: Callable[[], T]) -> T:
        """Run one exchangelib operation; wait out one short ErrorServerBusy back-off; translate errors."""
        try:
            try:
                return f()
            except ews_errors.ErrorServerBusy as e:
                back_off = e.back_off
                if back_off is None or back_off > self._ews.max_retry_wait or str(e).startswith("Reraised from"):
                    raise
                self.log.info("{mailbox}: server busy, retrying in {back_off}s", mailbox=self._config.name,
                              back_off=back_off)
                self._wait(back_off)
                return f()
        except Exception as e:  # translated at this edge into the router's error classes
            translated = self._translate(e)
            if translated is e:
                raise
            raise translated from None

    def error_of(self, e: Exception) -> Exception:
        """``e`` as the router's error classes (an exchangelib error raised outside this source's calls)."""
        return self._translate(e)

    def _translate(self, e: Exception) -> Exception:
        name = self._config.name
        if isinstance(e, MailboxError):
            return e
        if isinstance(e, ews_errors.ErrorServerBusy):
            if str(e).startswith("Reraised from"):  # a connection or transient server failure exchangelib retries
                return Unavailable(f"{name}: {self._ews.service_endpoint}: {e}", retry_after=e.back_off)
            return RateLimited(f"{name}: Exchange asks to back off {e.back_off}s", retry_after=e.back_off)
        if isinstance(e, ews_errors.RateLimitError):
            return RateLimited(f"{name}: Exchange asks to back off {e.wait}s", retry_after=e.wait)
        if isinstance(e, ews_errors.UnauthorizedError):
            return AuthFailed(f"{name}: {self._ews.service_endpoint} refused the credentials of {self._config.username}")
        if isinstance(e, (ews_errors.ErrorNonExistentMailbox, ews_errors.ErrorFolderNotFound,
                          ews_errors.ErrorImpersonateUserDenied, ews_errors.ErrorImpersonationDenied)):
            return MailboxMissing(f"{name}: {self._ews.primary_smtp_address}: {type(e).__name__}: {e}")
        if isinstance(e, ews_errors.ErrorInvalidSyncStateData):
            return CursorInvalid(f"{name}: Exchange rejected the stored sync state: {e}")
        if isinstance(e, ews_errors.ErrorItemNotFound):
            return MessageGone(f"{name}: the item is no longer in the mailbox")
        if isinstance(e, (ews_errors.TransportError, ews_errors.ErrorTimeoutExpired,
                          ews_errors.ErrorInternalServerTransientError, ews_errors.ErrorMailboxStoreUnavailable,
                          ews_errors.ErrorConnectionFailed, ews_errors.ErrorConnectionFailedTransientError,
                          ews_errors.CASError, ConnectionError, OSError)):
            return Unavailable(f"{name}: {self._ews.service_endpoint}: {type(e).__name__}: {e}")
        if isinstance(e, ews_errors.EWSError):
            return MailboxError(f"{name}: {type(e).__name__}: {e}")
        return e
