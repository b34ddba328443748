"""What the EWS contact, appointment and task parts share (``ews.EwsPimStore``): abook's extended properties,
one mailbox's exchangelib connection with its errors translated at this edge, and reading item bodies."""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any, Callable, Iterator, Mapping, Optional, TypeVar

from exchangelib import DELEGATE, IMPERSONATION, Account, Configuration, Credentials, FailFast
from exchangelib import errors as ews_errors
from exchangelib.ewsdatetime import EWSTimeZone
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.folders import Calendar, Contacts, Root, Tasks
from exchangelib.items import CalendarItem, Contact, Task
from exchangelib.properties import DistinguishedFolderId, Mailbox
from exchangelib.protocol import BaseProtocol
from exchangelib.services import SyncFolderItems
from exchangelib.transport import BASIC, DIGEST, NTLM
from exchangelib.version import Build, Version

from abook.config.mail import EwsOptions
from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxError, MailboxMissing, RateLimited, Unavailable
from abook.mailbox.ews import CAFileAdapter, _server_of
from abook.mailbox.pim.interfaces import Changes, ItemGone, ItemRejected, Listed, StaleItem
from abook.mailbox.pim.schema import Values, plain_body, with_regarding

T = TypeVar("T")

#: abook's extended property set; Graph: "String {9d1e8f4a-6b2c-4e3d-9a51-0c7b2f8e6d14} Name abookCrmId"
PROPERTY_SET = "9d1e8f4a-6b2c-4e3d-9a51-0c7b2f8e6d14"
PROPERTY_NAME = "abookCrmId"
ATTR = "abook_crm_id"
#: the regarding record's name abook shows in an appointment's or task's notes (schema.with_regarding)
REGARDING_NAME = "abookRegarding"
REGARDING_ATTR = "abook_regarding"
#: the fields read of every item, before each kind's own
COMMON = ["categories", ATTR]
IMPORTANCE = {"low": "Low", "normal": "Normal", "high": "High"}

_AUTH = {"ntlm": NTLM, "basic": BASIC, "digest": DIGEST}
_ACCESS = {"impersonation": IMPERSONATION, "delegate": DELEGATE}
_FOLDERS = {"contact": Contacts, "appointment": Calendar, "task": Tasks}

_register_lock = threading.Lock()
_registered = False


class CrmId(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = PROPERTY_NAME
    property_type = "String"


class RegardingName(ExtendedProperty):
    property_set_id = PROPERTY_SET
    property_name = REGARDING_NAME
    property_type = "String"


def register_property() -> None:
    global _registered
    with _register_lock:
        if not _registered:
            for cls in (Contact, CalendarItem, Task):
                cls.register(ATTR, CrmId)
            for cls in (CalendarItem, Task):
                cls.register(REGARDING_ATTR, RegardingName)
            _registered = True


class EwsConnection:
    """One mailbox reached by impersonation (or delegate access), as for mail (``mailbox/ews.py``): its
    Account, its distinguished folders built locally (no GetFolder round trip), and every call made
    through ``call``, which waits out one ErrorServerBusy and translates exchangelib's errors."""

    def __init__(self, options: EwsOptions, address: str, username: str, password: str, timeout: float,
                 wait: Callable[[float], Any], ca_file: Optional[str]) -> None:
        self.options = options
        self.address = address
        self._username = username
        self._password = password
        self._timeout = timeout
        self._wait = wait
        self._account: Optional[Account] = None
        self._folders: dict[str, Any] = {}
        if ca_file is not None:
            if not issubclass(BaseProtocol.HTTP_ADAPTER_CLS, CAFileAdapter):
                raise MailboxError("ca_file needs exchangelib's HTTP adapter, which another part replaced")
            CAFileAdapter.ca_files[_server_of(options.service_endpoint)] = ca_file

    def close(self) -> None:
        account, self._account, self._folders = self._account, None, {}
        if account is not None:
            account.protocol.close()

    def changes(self, entity: str, token: Optional[str]) -> Changes:
        """``SyncFolderItems`` from the saved sync state, page after page until the last item is in range."""
        def sync() -> Changes:
            folder = self.folder(entity)
            changed: dict[str, Listed] = {}
            deleted: list[str] = []
            state = token
            while True:
                svc = SyncFolderItems(account=folder.account)
                changes = list(svc.call(folder=folder, shape="IdOnly", additional_fields=set(), sync_state=state,
                                        ignore=None, max_changes_returned=512, sync_scope=None))
                for change_type, item in changes:
                    if isinstance(item, Exception):
                        raise item
                    if change_type in (SyncFolderItems.CREATE, SyncFolderItems.UPDATE):
                        changed[item.id] = Listed(item.id, item.changekey)
                    elif change_type == SyncFolderItems.DELETE:
                        item_id = item.id if hasattr(item, "id") else item[0]
                        changed.pop(item_id, None)
                        deleted.append(item_id)
                state = svc.sync_state
                if svc.includes_last_item_in_range:
                    break
            return Changes(tuple(changed.values()), tuple(deleted), state, complete=token is None)

        return self.call(sync)

    def fetch(self, entity: str, ids: list[str], only: list[str]) -> Iterator[Any]:
        """The exchangelib items of ``ids``; those no longer there left out. Runs inside ``call``."""
        folder = self.folder(entity)
        for it in folder.account.fetch(ids=[(i, None) for i in ids], folder=folder, only_fields=only):
            if isinstance(it, ews_errors.ErrorItemNotFound):
                continue
            if isinstance(it, Exception):
                raise it
            yield it

    def refetch(self, entity: str, item_id: str, only: list[str]) -> Any:
        """The one exchangelib item ``item_id`` as stored now (gone: ErrorItemNotFound). Runs inside ``call``."""
        folder = self.folder(entity)  # given, so exchangelib needs no GetFolder round trip
        got = list(folder.account.fetch(ids=[(item_id, None)], folder=folder, only_fields=only))
        for it in got:
            if isinstance(it, Exception):
                raise it
        (it,) = got
        return it

    # -- exchangelib plumbing (as mailbox/ews.py)

    def _make_account(self) -> Account:
        e = self.options
        credentials = Credentials(self._username, self._password)
        version = Version(build=Build(*[int(p) for p in e.server_version.split(".")])) if e.server_version else None
        config = Configuration(service_endpoint=e.service_endpoint, credentials=credentials,
                               auth_type=_AUTH[e.auth_type], version=version, retry_policy=FailFast(),
                               max_connections=e.max_connections)
        account = Account(primary_smtp_address=self.address, credentials=credentials, config=config,
                          autodiscover=False, access_type=_ACCESS[e.access_type], default_timezone=EWSTimeZone("UTC"))
        account.protocol.TIMEOUT = self._timeout
        return account

    def folder(self, entity: str) -> Any:
        if entity in self._folders:
            return self._folders[entity]
        account = self._account or self._make_account()
        self._account = account
        mailbox = Mailbox(email_address=self.address)
        root = Root(account=account, _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID,
                                                                             mailbox=mailbox))
        cls = _FOLDERS[entity]
        folder = cls(root=root, _distinguished_id=DistinguishedFolderId(id=cls.DISTINGUISHED_FOLDER_ID, mailbox=mailbox))
        self._folders[entity] = folder
        return folder

    def call(self, f: Callable[[], T]) -> T:
        try:
            try:
                return f()
            except ews_errors.ErrorServerBusy as e:
                if e.back_off is None or e.back_off > self.options.max_retry_wait or str(e).startswith("Reraised"):
                    raise
                self._wait(e.back_off)
                return f()
        except (MailboxError, ItemGone, StaleItem):
            raise
        except Exception as e:  # noqa: BLE001 - translated at this edge
            raise self._translate(e) from None

    def _translate(self, e: Exception) -> Exception:
        name = self.address
        if isinstance(e, ews_errors.ErrorServerBusy):
            return RateLimited(f"{name}: Exchange asks to back off {e.back_off}s", retry_after=e.back_off)
        if isinstance(e, ews_errors.RateLimitError):
            return RateLimited(f"{name}: Exchange asks to back off {e.wait}s", retry_after=e.wait)
        if isinstance(e, ews_errors.UnauthorizedError):
            return AuthFailed(f"{self.options.service_endpoint} refused the credentials of {self._username}")
        if isinstance(e, (ews_errors.ErrorNonExistentMailbox, ews_errors.ErrorFolderNotFound,
                          ews_errors.ErrorImpersonateUserDenied, ews_errors.ErrorImpersonationDenied)):
            return MailboxMissing(f"{name}: {type(e).__name__}: {e}")
        if isinstance(e, ews_errors.ErrorInvalidSyncStateData):
            return CursorInvalid(f"{name}: Exchange rejected the stored sync state")
        if isinstance(e, ews_errors.ErrorItemNotFound):
            return ItemGone(f"{name}: the item is no longer there")
        if isinstance(e, (ews_errors.ErrorIrresolvableConflict, ews_errors.ErrorChangeKeyRequiredForWriteOperations)):
            return StaleItem(f"{name}: the item changed since it was read")
        if isinstance(e, (ews_errors.TransportError, ews_errors.ErrorTimeoutExpired,
                          ews_errors.ErrorInternalServerTransientError, ews_errors.ErrorMailboxStoreUnavailable,
                          ews_errors.ErrorConnectionFailed, ews_errors.CASError, ConnectionError, OSError)):
            return Unavailable(f"{self.options.service_endpoint}: {type(e).__name__}")
        if isinstance(e, ews_errors.ResponseMessageError):
            return ItemRejected(f"{name}: {type(e).__name__}: {e}")
        return e


def body_text(body: Any) -> Optional[str]:
    if body is None:
        return None
    text = str(body)
    if type(body).__name__ == "HTMLBody":
        from abook.mailbox.pim.html import html_to_text

        return html_to_text(text)
    return plain_body(text)


def date_text(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


def notes(item: Any, values: Values, creating: bool, current: Callable[[], Mapping[str, Optional[str]]]) -> list[str]:
    """An appointment's or task's body: the description and the regarding line (one of them changing rewrites
    both; ``current`` reads the item's values for the one not given)."""
    if "description" not in values and "regarding" not in values:
        return []
    now: Mapping[str, Optional[str]] = {}
    if not creating and ("description" not in values or "regarding" not in values):
        now = current()
    description = values["description"] if "description" in values else now.get("description")
    regarding = values["regarding"] if "regarding" in values else now.get("regarding")
    item.body = with_regarding(description, regarding)
    setattr(item, REGARDING_ATTR, regarding or None)
    return ["body", REGARDING_ATTR]
