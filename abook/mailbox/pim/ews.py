"""A user's Exchange contacts, calendar and tasks through EWS (exchangelib, blocking; the ``sync`` pool).

* One service account reaches every user's mailbox by impersonation (``access_type = "impersonation"``;
  delegate access and per-user credentials work too), with autodiscover off and a fixed server build
  when configured, as for mail (``mailbox/ews.py``).
* Folders are the distinguished ``contacts``, ``calendar`` and ``tasks`` of the user's mailbox, built
  locally (no GetFolder round trip).
* Changes: ``SyncFolderItems`` from the saved sync state, page after page until the last item is in
  range; Create/Update give (ItemId, ChangeKey), Delete the ids. ``ErrorInvalidSyncStateData`` ->
  CursorInvalid (the engine lists everything again).
* The CRM id travels in an extended property in abook's own property set (the GUID below) named
  ``abookCrmId``, a String: Graph reads the same property as ``String {GUID} Name abookCrmId``
  (``singleValueExtendedProperties``). ``find_blocking`` is ``FindItem`` restricted on it.
* Updates send the ChangeKey with ``ConflictResolution=NeverOverwrite``: an item changed since it was
  read fails (ErrorIrresolvableConflict) and becomes StaleItem. Deletes move to Deleted Items.
* Meetings: invitations (``SendToAllAndSaveCopy``) and cancellations only when the engine asks (the
  organiser's sync, a future meeting); otherwise ``SendToNone``.
* Errors at the edge as in ``mailbox/ews.py``; ErrorItemNotFound -> ItemGone.
* A recurring master is listed as its occurrences (``series.py``, ``ews_series.py``): changed items are
  read during the listing to expand masters, and the sync state carries the window's day, so the first
  sync of a day lists everything again.

This class is the IPimStore; the connection, the properties and the error translation are ews_common.py,
each kind's fields ews_contacts.py, ews_events.py (with the recurring masters) and ews_tasks.py.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from typing import Any, Callable, Optional, Union

from exchangelib import errors as ews_errors
from exchangelib.items import MOVE_TO_DELETED_ITEMS, NEVER_OVERWRITE, SEND_TO_ALL_AND_SAVE_COPY, SEND_TO_NONE
from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import EwsOptions
from abook.mailbox.pim import series
from abook.mailbox.pim.ews_common import (  # noqa: F401 - PROPERTY_* and register_property: public names of this module
    ATTR,
    PROPERTY_NAME,
    PROPERTY_SET,
    EwsConnection,
    register_property,
)
from abook.mailbox.pim.ews_contacts import EwsContacts
from abook.mailbox.pim.ews_events import EwsEvents
from abook.mailbox.pim.ews_tasks import EwsTasks
from abook.mailbox.pim.interfaces import Changes, IPimStore, Item, Listed
from abook.mailbox.pim.schema import Values, normalise


@implementer(IPimStore)
class EwsPimStore:
    log = Logger()
    entities = ("contact", "appointment", "task")

    def __init__(self, options: EwsOptions, address: str, username: str, password: str, *, timeout: float = 30.0,
                 ca_file: Optional[str] = None, wait: Callable[[float], Any] = threading.Event().wait,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc),
                 horizon_days: int = series.HORIZON_DAYS, lookback_days: int = series.LOOKBACK_DAYS) -> None:
        register_property()
        self._options = options
        self._address = address
        self.clock = clock
        self.horizon_days = horizon_days
        self.lookback_days = lookback_days
        self._conn = EwsConnection(options, address, username, password, timeout, wait, ca_file)
        self.events = EwsEvents(self._conn, self._window, self.log)
        self._kinds: dict[str, Union[EwsContacts, EwsEvents, EwsTasks]] = {
            "contact": EwsContacts(self._conn), "appointment": self.events, "task": EwsTasks(self._conn)}

    def __repr__(self) -> str:
        return f"<EwsPimStore {self._address} at {self._options.service_endpoint}>"

    def _window(self) -> series.Window:
        return series.window(self.clock(), self.horizon_days, self.lookback_days)

    # -- IPimStore

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        if entity != "appointment":
            return self._conn.changes(entity, token)
        return self.events.changes(token)

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        if not ids:
            return []
        if entity == "appointment":
            out, singles = self.events.occurrences(ids)
            if len(singles) < len(ids):
                return out + (self.get_blocking(entity, singles) if singles else [])
        kind = self._kinds[entity]
        return self._conn.call(lambda: [kind.item(it) for it in self._conn.fetch(entity, ids, kind.only)])

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        kind = self._kinds[entity]

        def create() -> Listed:
            folder = self._conn.folder(entity)
            item = kind.cls(account=folder.account, folder=folder)
            kind.apply(item, normalise(entity, values), creating=True)
            setattr(item, ATTR, crm_id or None)
            if entity == "appointment":
                item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY if notify else SEND_TO_NONE)
            else:
                item.save()
            return Listed(item.id, item.changekey)

        return self._conn.call(create)

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        series_id, rid = series.split_id(item_id)
        if rid is not None:
            return self._conn.call(lambda: self.events.update_occurrence(series_id, rid, etag, values))
        kind = self._kinds[entity]

        def update() -> Listed:
            folder = self._conn.folder(entity)
            item = kind.cls(account=folder.account, folder=folder, id=item_id, changekey=etag)
            fields = kind.apply(item, dict(values), creating=False)
            if crm_id is not None:
                setattr(item, ATTR, crm_id)
                fields.append(ATTR)
            if not fields:
                return Listed(item_id, etag)
            item.save(update_fields=fields, conflict_resolution=NEVER_OVERWRITE)
            return Listed(item.id, item.changekey)

        return self._conn.call(update)

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        series_id, rid = series.split_id(item_id)
        if rid is not None:
            target = self._conn.call(lambda: self.events.occurrence_target(series_id, rid, etag, must_exist=False))
            if target is None:
                return

        def delete() -> None:
            account = self._conn.folder(entity).account
            ids = [target] if rid is not None else [(item_id, None)]
            for result in account.bulk_delete(ids, delete_type=MOVE_TO_DELETED_ITEMS,
                                              send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY if notify else SEND_TO_NONE):
                if isinstance(result, ews_errors.ErrorItemNotFound):
                    return
                if isinstance(result, Exception):
                    raise result

        self._conn.call(delete)

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        def find() -> Optional[Listed]:
            folder = self._conn.folder(entity)
            for item in folder.filter(**{ATTR: crm_id}).only("id", "changekey"):
                return Listed(item.id, item.changekey)
            return None

        return self._conn.call(find)

    def project(self, entity: str, values: Values) -> dict[str, Optional[str]]:
        """Exchange keeps a task's start and due as dates, completed items at 100 %, and sets the date
        completed itself (when the status becomes Completed), so that one is not synchronised."""
        return self._kinds[entity].project(normalise(entity, values))

    def close_blocking(self) -> None:
        self._conn.close()
