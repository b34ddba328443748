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
"""

from __future__ import annotations

import threading
from decimal import Decimal
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Optional, TypeVar

from exchangelib import DELEGATE, IMPERSONATION, Account, Configuration, Credentials, FailFast
from exchangelib import errors as ews_errors
from exchangelib.ewsdatetime import EWSDate, EWSDateTime, EWSTimeZone
from exchangelib.extended_properties import ExtendedProperty
from exchangelib.folders import Calendar, Contacts, Root, Tasks
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import (
    MOVE_TO_DELETED_ITEMS,
    NEVER_OVERWRITE,
    SEND_TO_ALL_AND_SAVE_COPY,
    SEND_TO_NONE,
    CalendarItem,
    Contact,
    Task,
)
from exchangelib.properties import Attendee, DistinguishedFolderId, Mailbox
from exchangelib.protocol import BaseProtocol
from exchangelib.services import SyncFolderItems
from exchangelib.transport import BASIC, DIGEST, NTLM
from exchangelib.version import Build, Version
from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import EwsOptions
from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxError, MailboxMissing, RateLimited, Unavailable
from abook.mailbox.ews import CAFileAdapter, _server_of
from abook.mailbox.pim import ews_series, series
from abook.mailbox.pim.interfaces import Changes, IPimStore, Item, ItemGone, ItemRejected, Listed, StaleItem
from abook.mailbox.pim.schema import (
    Values,
    normalise,
    parse_moment,
    parse_parties,
    parse_when,
    parties_text,
    plain_body,
    split_regarding,
    with_regarding,
)

T = TypeVar("T")

#: abook's extended property set; Graph: "String {9d1e8f4a-6b2c-4e3d-9a51-0c7b2f8e6d14} Name abookCrmId"
PROPERTY_SET = "9d1e8f4a-6b2c-4e3d-9a51-0c7b2f8e6d14"
PROPERTY_NAME = "abookCrmId"
ATTR = "abook_crm_id"
#: the regarding record's name abook shows in an appointment's or task's notes (schema.with_regarding)
REGARDING_NAME = "abookRegarding"
REGARDING_ATTR = "abook_regarding"

_AUTH = {"ntlm": NTLM, "basic": BASIC, "digest": DIGEST}
_ACCESS = {"impersonation": IMPERSONATION, "delegate": DELEGATE}
_CLASSES = {"contact": Contact, "appointment": CalendarItem, "task": Task}
_FOLDERS = {"contact": Contacts, "appointment": Calendar, "task": Tasks}
PHONES = {"telephone1": "BusinessPhone", "business2": "BusinessPhone2", "company": "CompanyMainPhone",
          "fax": "BusinessFax", "mobilephone": "MobilePhone", "telephone2": "HomePhone", "home2": "HomePhone2",
          "telephone3": "OtherTelephone", "pager": "Pager", "assistantphone": "AssistantPhone"}
_CONTACT_TEXT = {"fullname": "display_name", "firstname": "given_name", "middlename": "middle_name",
                 "lastname": "surname", "nickname": "nickname", "jobtitle": "job_title", "department": "department",
                 "company_name": "company_name", "assistantname": "assistant_name", "managername": "manager",
                 "spousesname": "spouse_name", "websiteurl": "business_homepage"}
_IMPORTANCE = {"low": "Low", "normal": "Normal", "high": "High"}
_STATUS_DONE = "Completed"

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
            for cls in _CLASSES.values():
                cls.register(ATTR, CrmId)
            for cls in (CalendarItem, Task):
                cls.register(REGARDING_ATTR, RegardingName)
            _registered = True


def _only(entity: str) -> list[str]:
    common = ["categories", ATTR]
    if entity == "contact":
        return common + list(_CONTACT_TEXT.values()) + ["phone_numbers", "email_addresses", "physical_addresses",
                                                        "body", "birthday", "wedding_anniversary", "children"]
    if entity == "appointment":
        return common + ["subject", "location", "body", "start", "end", "is_all_day", "importance", "organizer",
                         "required_attendees", "optional_attendees", "legacy_free_busy_status", "uid",
                         "_start_timezone", REGARDING_ATTR, *ews_series.SERIES_FIELDS]
    return common + [REGARDING_ATTR, "subject", "body", "start_date", "due_date", "complete_date", "percent_complete", "status",
                     "importance"]


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
        self._username = username
        self._password = password
        self._timeout = timeout
        self._wait = wait
        self._account: Optional[Account] = None
        self._folders: dict[str, Any] = {}
        self.clock = clock
        self.horizon_days = horizon_days
        self.lookback_days = lookback_days
        if ca_file is not None:
            if not issubclass(BaseProtocol.HTTP_ADAPTER_CLS, CAFileAdapter):
                raise MailboxError("ca_file needs exchangelib's HTTP adapter, which another part replaced")
            CAFileAdapter.ca_files[_server_of(options.service_endpoint)] = ca_file

    def __repr__(self) -> str:
        return f"<EwsPimStore {self._address} at {self._options.service_endpoint}>"

    # -- IPimStore

    def changes_blocking(self, entity: str, token: Optional[str]) -> Changes:
        if entity != "appointment":
            return self._changes(entity, token)
        win = self._window()
        day, _, state = (token or "").partition("|")
        changes = self._changes(entity, state if token and day == win.day else None)
        listed: list[Listed] = []
        deleted = list(changes.deleted)
        ids = [x.id for x in changes.changed]
        expanded: dict[str, Optional[list[Item]]] = {}
        for i in range(0, len(ids), 100):
            expanded.update(self._call(lambda chunk=ids[i:i + 100]: self._expand(chunk, win)))  # type: ignore[misc]
        for x in changes.changed:
            occurrences = expanded.get(x.id)
            if occurrences is None:
                listed.append(x)
            else:
                listed += [Listed(it.id, it.etag) for it in occurrences]
                deleted.append(x.id)  # its occurrences are listed in full (series.drop_series)
        return Changes(tuple(listed), tuple(deleted) if not changes.complete else (),
                       f"{win.day}|{changes.token or ''}", complete=changes.complete,
                       extra={series.FROM_KEY: win.day})

    def _changes(self, entity: str, token: Optional[str]) -> Changes:
        def sync() -> Changes:
            folder = self._folder(entity)
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

        return self._call(sync)

    def get_blocking(self, entity: str, ids: list[str]) -> list[Item]:
        if not ids:
            return []

        split = [series.split_id(i) for i in ids]
        if entity == "appointment" and any(rid is not None for _, rid in split):
            wanted = set(ids)
            masters = sorted({s for s, rid in split if rid is not None})
            found = self._call(lambda: self._expand(masters, self._window()))
            out = [it for its in found.values() for it in its or () if it.id in wanted]
            singles = [i for i, rid in split if rid is None]
            return out + (self.get_blocking(entity, singles) if singles else [])

        def get() -> list[Item]:
            folder = self._folder(entity)
            out = []
            for it in folder.account.fetch(ids=[(i, None) for i in ids], folder=folder, only_fields=_only(entity)):
                if isinstance(it, ews_errors.ErrorItemNotFound):
                    continue
                if isinstance(it, Exception):
                    raise it
                out.append(self._item(entity, it))
            return out

        return self._call(get)

    def create_blocking(self, entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        def create() -> Listed:
            folder = self._folder(entity)
            item = _CLASSES[entity](account=folder.account, folder=folder)
            self._apply(entity, item, normalise(entity, values), creating=True)
            setattr(item, ATTR, crm_id or None)
            if entity == "appointment":
                item.save(send_meeting_invitations=SEND_TO_ALL_AND_SAVE_COPY if notify else SEND_TO_NONE)
            else:
                item.save()
            return Listed(item.id, item.changekey)

        return self._call(create)

    def update_blocking(self, entity: str, item_id: str, etag: str, values: Values,
                        crm_id: Optional[str] = None) -> Listed:
        series_id, rid = series.split_id(item_id)
        if rid is not None:
            return self._call(lambda: self._update_occurrence(series_id, rid, etag, values))

        def update() -> Listed:
            folder = self._folder(entity)
            item = _CLASSES[entity](account=folder.account, folder=folder, id=item_id, changekey=etag)
            fields = self._apply(entity, item, dict(values), creating=False)
            if crm_id is not None:
                setattr(item, ATTR, crm_id)
                fields.append(ATTR)
            if not fields:
                return Listed(item_id, etag)
            item.save(update_fields=fields, conflict_resolution=NEVER_OVERWRITE)
            return Listed(item.id, item.changekey)

        return self._call(update)

    def delete_blocking(self, entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        series_id, rid = series.split_id(item_id)
        if rid is not None:
            target = self._call(lambda: self._occurrence_target(series_id, rid, etag, must_exist=False))
            if target is None:
                return

        def delete() -> None:
            account = self._folder(entity).account
            ids = [target] if rid is not None else [(item_id, None)]
            for result in account.bulk_delete(ids, delete_type=MOVE_TO_DELETED_ITEMS,
                                              send_meeting_cancellations=SEND_TO_ALL_AND_SAVE_COPY if notify else SEND_TO_NONE):
                if isinstance(result, ews_errors.ErrorItemNotFound):
                    return
                if isinstance(result, Exception):
                    raise result

        self._call(delete)

    def find_blocking(self, entity: str, crm_id: str) -> Optional[Listed]:
        def find() -> Optional[Listed]:
            folder = self._folder(entity)
            for item in folder.filter(**{ATTR: crm_id}).only("id", "changekey"):
                return Listed(item.id, item.changekey)
            return None

        return self._call(find)

    def project(self, entity: str, values: Values) -> dict[str, Optional[str]]:
        """Exchange keeps a task's start and due as dates, completed items at 100 %, and sets the date
        completed itself (when the status becomes Completed), so that one is not synchronised."""
        out = normalise(entity, values)
        if entity == "task":
            out["completed"] = None
            for name in ("startdate", "duedate"):
                if out[name]:
                    out[name] = out[name][:10]  # type: ignore[index]
            if out["status"] == "completed":
                out["percentcomplete"] = "100"
            elif out["percentcomplete"] is None:
                out["percentcomplete"] = "0"
            out["status"] = out["status"] or "open"
            out["prioritycode"] = out["prioritycode"] or "normal"
        if entity == "appointment":
            out["prioritycode"] = out["prioritycode"] or "normal"
            out["showas"] = out["showas"] or "busy"
            out["organizer"] = self._address.lower()  # Exchange makes the mailbox's owner the organiser
            if out["timezone"]:  # Exchange keeps a Windows zone: read back, it is that zone's main IANA name
                try:
                    key = EWSTimeZone.from_ms_id(EWSTimeZone(out["timezone"]).ms_id).key
                except Exception:  # noqa: BLE001 - a zone Windows does not know is sent as UTC
                    key = None
                out["timezone"] = None if key in ("UTC", "Etc/UTC", "GMT") else key
        if entity == "contact" and not out["fullname"]:  # as _apply names a new contact
            names = [out.get("firstname"), out.get("middlename"), out.get("lastname")]
            out["fullname"] = " ".join(n for n in names if n) or out.get("emailaddress1") or "?"
        return out

    def close_blocking(self) -> None:
        account, self._account, self._folders = self._account, None, {}
        if account is not None:
            account.protocol.close()

    # -- recurring masters

    def _window(self) -> series.Window:
        return series.window(self.clock(), self.horizon_days, self.lookback_days)

    def _fetch(self, ids: list[str]) -> list[Any]:
        folder = self._folder("appointment")
        out = []
        for it in folder.account.fetch(ids=[(i, None) for i in ids], folder=folder, only_fields=_only("appointment")):
            if isinstance(it, ews_errors.ErrorItemNotFound):
                continue
            if isinstance(it, Exception):
                raise it
            out.append(it)
        return out

    def _expand(self, ids: list[str], win: series.Window) -> dict[str, Optional[list[Item]]]:
        """id -> the occurrences in ``win`` of each recurring master (None: no master); gone ones left out."""
        out: dict[str, Optional[list[Item]]] = {}
        masters = []
        for it in self._fetch(ids):
            out[it.id] = None
            if getattr(it, "type", None) == "RecurringMaster" and it.recurrence is not None:
                masters.append(it)
        for it in masters:
            values = self._event_values(it)
            exceptions = ews_series.modified_ids(it, values["when"] is not None and "T" not in values["when"],
                                                 values.get("timezone"))
            by_id = {e.id: self._event_values(e) for e in self._fetch(list(exceptions.values()))} if exceptions else {}
            modified = {rid: by_id[i] for rid, i in exceptions.items() if i in by_id}
            try:
                out[it.id] = ews_series.expand_master(it.id, it, values, tuple(it.categories or ()), modified, win)
            except (ValueError, KeyError, TypeError) as e:  # a pattern abook cannot read: one item, not the listing
                self.log.warn("{address}: cannot expand a recurring series: {error}", address=self._address,
                              error=str(e)[:200])
        return out

    def _occurrence_target(self, series_id: str, rid: str, etag: Optional[str], must_exist: bool = True,
                           seen: Optional[list[Item]] = None) -> Any:
        """The id to write one occurrence through: its exception's ItemId, or an OccurrenceItemId on the master."""
        from exchangelib.properties import OccurrenceItemId

        found = self._expand([series_id], series.covering(self._window(), rid)).get(series_id) or []
        item = next((it for it in found if it.id == series.occurrence_id(series_id, rid)), None)
        if item is None:
            if must_exist:
                raise ItemGone(f"{self._address}: the occurrence is no longer there")
            return None
        if etag is not None and item.etag != etag:
            raise StaleItem(f"{self._address}: the occurrence changed since it was read")
        if seen is not None:
            seen.append(item)
        (master,) = self._fetch([series_id])
        values = self._event_values(master)
        all_day = values["when"] is not None and "T" not in values["when"]
        exception = ews_series.modified_ids(master, all_day, values.get("timezone")).get(rid)
        if exception is not None:
            return (exception, None)
        index = ews_series.instance_index(master, values, rid)
        if index is None:
            raise ItemRejected(f"{self._address}: the occurrence has no place in its series' pattern")
        return OccurrenceItemId(id=master.id, changekey=master.changekey, instance_index=index)

    def _update_occurrence(self, series_id: str, rid: str, etag: str, values: Values) -> Listed:
        occurrence_id = series.occurrence_id(series_id, rid)
        seen: list[Item] = []
        target = self._occurrence_target(series_id, rid, etag, seen=seen)
        if not values:
            return Listed(occurrence_id, etag)  # an occurrence carries no CRM id of its own
        if "description" in values or "regarding" in values:  # the notes hold both: keep the other one
            values = {"description": seen[0].values.get("description"), "regarding": seen[0].values.get("regarding"),
                      **values}
        folder = self._folder("appointment")
        if isinstance(target, tuple):
            item = CalendarItem(account=folder.account, folder=folder, id=target[0], changekey=target[1])
        else:
            item = CalendarItem(account=folder.account, folder=folder, _id=target)
        fields = self._apply("appointment", item, dict(values), creating=False)
        item.save(update_fields=fields, send_meeting_invitations=SEND_TO_NONE)
        found = self._expand([series_id], series.covering(self._window(), rid)).get(series_id) or []
        current = next((it for it in found if it.id == occurrence_id), None)
        if current is None:
            raise ItemGone(f"{self._address}: the occurrence is no longer there")
        return Listed(occurrence_id, current.etag)

    # -- exchangelib items <-> values

    def _item(self, entity: str, it: Any) -> Item:
        categories = tuple(it.categories or ())
        crm_id = getattr(it, ATTR, None) or None
        if entity == "contact":
            return Item(it.id, it.changekey, self._contact_values(it), crm_id, categories)
        if entity == "appointment":
            values = self._event_values(it)
            return Item(it.id, it.changekey, values, crm_id, categories, values.get("uid"))
        return Item(it.id, it.changekey, self._task_values(it), crm_id, categories)

    @staticmethod
    def _body(body: Any) -> Optional[str]:
        if body is None:
            return None
        text = str(body)
        if type(body).__name__ == "HTMLBody":
            from abook.mailbox.pim.html import html_to_text

            return html_to_text(text)
        return plain_body(text)

    def _contact_values(self, it: Any) -> dict[str, Optional[str]]:
        v: dict[str, object] = {name: getattr(it, attr, None) for name, attr in _CONTACT_TEXT.items()}
        phones = {p.label: p.phone_number for p in (it.phone_numbers or [])}
        for name, label in PHONES.items():
            v[name] = phones.get(label)
        emails = {e.label: e.email for e in (it.email_addresses or [])}
        for i in (1, 2, 3):
            v[f"emailaddress{i}"] = emails.get(f"EmailAddress{i}")
        business = next((a for a in (it.physical_addresses or []) if a.label == "Business"), None)
        if business is not None:
            v.update(address1_street=business.street, address1_city=business.city,
                     address1_stateorprovince=business.state, address1_postalcode=business.zipcode,
                     address1_country=business.country)
        v["description"] = self._body(it.body)
        v["birthdate"] = _date(it.birthday)
        v["anniversary"] = _date(it.wedding_anniversary)
        v["childrensnames"] = "; ".join(it.children) if it.children else None
        return normalise("contact", v)

    def _event_values(self, it: Any) -> dict[str, Optional[str]]:
        when = zone = None
        if it.start is not None:
            if it.is_all_day:  # exchangelib gives the last day; abook's end is the day after
                end = it.end + timedelta(days=1) if it.end is not None else it.start + timedelta(days=1)
                when = f"{_date(it.start)}/{_date(end)}"
            else:
                when = f"{_utc(it.start)}/{_utc(it.end or it.start)}"
            tz = getattr(it, "_start_timezone", None)
            zone = getattr(tz, "key", None) if tz is not None else None
            zone = None if zone in ("UTC", "Etc/UTC", "GMT") else zone
        attendees = [("required", a.mailbox.email_address) for a in (it.required_attendees or []) if a.mailbox]
        attendees += [("optional", a.mailbox.email_address) for a in (it.optional_attendees or []) if a.mailbox]
        return normalise("appointment", {
            "when": when, "timezone": zone, "subject": it.subject,
            "location": it.location,
            "description": split_regarding(self._body(it.body), getattr(it, REGARDING_ATTR, None)),
            "regarding": getattr(it, REGARDING_ATTR, None),
            "prioritycode": (it.importance or "Normal").lower(),
            "organizer": (it.organizer.email_address or "").lower() or None if it.organizer else None,
            "attendees": parties_text([(r, a or "") for r, a in attendees]),
            "showas": "free" if it.legacy_free_busy_status == "Free" else "busy", "uid": it.uid,
        })

    def _task_values(self, it: Any) -> dict[str, Optional[str]]:
        percent = int(it.percent_complete) if it.percent_complete is not None else None
        done = it.status == _STATUS_DONE or percent == 100
        return normalise("task", {
            "subject": it.subject, "regarding": getattr(it, REGARDING_ATTR, None),
            "description": split_regarding(self._body(it.body), getattr(it, REGARDING_ATTR, None)),
            "startdate": _date(it.start_date),
            "duedate": _date(it.due_date), "completed": None,  # Exchange sets it itself: not synchronised
            "percentcomplete": 100 if done else percent, "status": "completed" if done else "open",
            "prioritycode": (it.importance or "Normal").lower(),
        })

    def _apply(self, entity: str, item: Any, values: Values, creating: bool) -> list[str]:
        """Set ``values`` on an exchangelib item; the item fields to update."""
        fields: list[str] = []
        if entity == "contact":
            current = {}
            for name, attr in _CONTACT_TEXT.items():
                if name in values:
                    setattr(item, attr, values[name])
                    fields.append(attr)
            if any(n in values for n in PHONES):
                if not creating:
                    current = self._current_contact(item)
                merged = {n: values.get(n, current.get(n)) for n in PHONES}
                item.phone_numbers = [PhoneNumber(label=PHONES[n], phone_number=v) for n, v in merged.items() if v] or None
                fields.append("phone_numbers")
            if any(f"emailaddress{i}" in values for i in (1, 2, 3)):
                if not creating and not current:
                    current = self._current_contact(item)
                merged = {i: values.get(f"emailaddress{i}", current.get(f"emailaddress{i}")) for i in (1, 2, 3)}
                item.email_addresses = [EmailAddress(label=f"EmailAddress{i}", email=v) for i, v in merged.items() if v] \
                    or None
                fields.append("email_addresses")
            address = ("address1_street", "address1_city", "address1_stateorprovince", "address1_postalcode",
                       "address1_country")
            if any(n in values for n in address):
                if not creating and not current:
                    current = self._current_contact(item)
                a = {n: values.get(n, current.get(n)) for n in address}
                item.physical_addresses = [PhysicalAddress(label="Business", street=a["address1_street"],
                                                           city=a["address1_city"], state=a["address1_stateorprovince"],
                                                           zipcode=a["address1_postalcode"],
                                                           country=a["address1_country"])] if any(a.values()) else None
                fields.append("physical_addresses")
            if "description" in values:
                item.body = values["description"]
                fields.append("body")
            for name, attr in (("birthdate", "birthday"), ("anniversary", "wedding_anniversary")):
                if name in values:
                    setattr(item, attr, EWSDate.fromisoformat(values[name]) if values[name] else None)
                    fields.append(attr)
            if "childrensnames" in values:
                item.children = [c.strip() for c in (values["childrensnames"] or "").split(";") if c.strip()] or None
                fields.append("children")
            if creating and not item.display_name:
                names = [values.get("firstname"), values.get("middlename"), values.get("lastname")]
                item.display_name = " ".join(n for n in names if n) or values.get("emailaddress1") or "?"
        elif entity == "appointment":
            fields += self._notes(entity, item, values, creating)
            for name, attr in (("subject", "subject"), ("location", "location")):
                if name in values:
                    setattr(item, attr, values[name])
                    fields.append(attr)
            if "when" in values or ("timezone" in values and creating):
                zone = values.get("timezone") if "timezone" in values else None
                tz = EWSTimeZone(zone) if zone else EWSTimeZone("UTC")
                item._start_timezone = item._end_timezone = tz
                if values.get("when"):
                    start, end = parse_when(values["when"])  # type: ignore[arg-type]
                    if isinstance(start, datetime):
                        item.start, item.end = _ews(start, tz), _ews(end, tz)  # type: ignore[arg-type]
                        item.is_all_day = False
                    else:  # exchangelib's all-day end is the last day; abook's is the day after
                        item.start = EWSDate.from_date(start)
                        item.end = EWSDate.from_date(end - timedelta(days=1))  # type: ignore[operator]
                        item.is_all_day = True
                    fields += ["start", "end", "is_all_day", "_start_timezone", "_end_timezone"]
            if creating and values.get("uid"):
                item.uid = values["uid"]
            if "prioritycode" in values and values["prioritycode"]:
                item.importance = _IMPORTANCE[values["prioritycode"]]  # type: ignore[index]
                fields.append("importance")
            if "showas" in values:
                item.legacy_free_busy_status = "Free" if values["showas"] == "free" else "Busy"
                fields.append("legacy_free_busy_status")
            if creating:
                required = [Attendee(mailbox=Mailbox(email_address=a), response_type="Unknown")
                            for r, a in parse_parties(values.get("attendees")) if r == "required"]
                optional = [Attendee(mailbox=Mailbox(email_address=a), response_type="Unknown")
                            for r, a in parse_parties(values.get("attendees")) if r == "optional"]
                item.required_attendees = required or None
                item.optional_attendees = optional or None
        else:
            fields += self._notes(entity, item, values, creating)
            for name, attr in (("subject", "subject"),):
                if name in values:
                    setattr(item, attr, values[name])
                    fields.append(attr)
            for name, attr in (("startdate", "start_date"), ("duedate", "due_date")):
                if name in values:
                    value = values[name]
                    setattr(item, attr, EWSDate.from_date(_as_date(parse_moment(value))) if value else None)
                    fields.append(attr)
            if "status" in values or "percentcomplete" in values:
                done = values.get("status") == "completed"
                percent = 100 if done else int(values.get("percentcomplete") or 0)
                item.percent_complete = Decimal(percent)
                item.status = _STATUS_DONE if done else ("InProgress" if percent else "NotStarted")
                fields += ["percent_complete", "status"]
            if values.get("prioritycode"):
                item.importance = _IMPORTANCE[values["prioritycode"]]  # type: ignore[index]
                fields.append("importance")
        return list(dict.fromkeys(fields))

    def _notes(self, entity: str, item: Any, values: Values, creating: bool) -> list[str]:
        """The body: the description and the regarding line (one of them changing rewrites both)."""
        if "description" not in values and "regarding" not in values:
            return []
        current: dict[str, Optional[str]] = {}
        if not creating and ("description" not in values or "regarding" not in values):
            (it,) = self._refetch(entity, item)
            current = self._event_values(it) if entity == "appointment" else self._task_values(it)
        description = values["description"] if "description" in values else current.get("description")
        regarding = values["regarding"] if "regarding" in values else current.get("regarding")
        item.body = with_regarding(description, regarding)
        setattr(item, REGARDING_ATTR, regarding or None)
        return ["body", REGARDING_ATTR]

    def _refetch(self, entity: str, item: Any) -> list[Any]:
        folder = self._folder(entity)
        got = list(folder.account.fetch(ids=[(item.id, None)], folder=folder, only_fields=_only(entity)))
        for it in got:
            if isinstance(it, Exception):
                raise it
        return got

    def _current_contact(self, item: Any) -> dict[str, Optional[str]]:
        folder = self._folder("contact")  # given, so exchangelib needs no GetFolder round trip
        (it,) = list(folder.account.fetch(ids=[(item.id, None)], folder=folder, only_fields=_only("contact")))
        if isinstance(it, Exception):
            raise it
        return self._contact_values(it)

    # -- exchangelib plumbing (as mailbox/ews.py)

    def _make_account(self) -> Account:
        e = self._options
        credentials = Credentials(self._username, self._password)
        version = Version(build=Build(*[int(p) for p in e.server_version.split(".")])) if e.server_version else None
        config = Configuration(service_endpoint=e.service_endpoint, credentials=credentials,
                               auth_type=_AUTH[e.auth_type], version=version, retry_policy=FailFast(),
                               max_connections=e.max_connections)
        account = Account(primary_smtp_address=self._address, credentials=credentials, config=config,
                          autodiscover=False, access_type=_ACCESS[e.access_type], default_timezone=EWSTimeZone("UTC"))
        account.protocol.TIMEOUT = self._timeout
        return account

    def _folder(self, entity: str) -> Any:
        if entity in self._folders:
            return self._folders[entity]
        account = self._account or self._make_account()
        self._account = account
        mailbox = Mailbox(email_address=self._address)
        root = Root(account=account, _distinguished_id=DistinguishedFolderId(id=Root.DISTINGUISHED_FOLDER_ID,
                                                                             mailbox=mailbox))
        cls = _FOLDERS[entity]
        folder = cls(root=root, _distinguished_id=DistinguishedFolderId(id=cls.DISTINGUISHED_FOLDER_ID, mailbox=mailbox))
        self._folders[entity] = folder
        return folder

    def _call(self, f: Callable[[], T]) -> T:
        try:
            try:
                return f()
            except ews_errors.ErrorServerBusy as e:
                if e.back_off is None or e.back_off > self._options.max_retry_wait or str(e).startswith("Reraised"):
                    raise
                self._wait(e.back_off)
                return f()
        except (MailboxError, ItemGone, StaleItem):
            raise
        except Exception as e:  # noqa: BLE001 - translated at this edge
            raise self._translate(e) from None

    def _translate(self, e: Exception) -> Exception:
        name = self._address
        if isinstance(e, ews_errors.ErrorServerBusy):
            return RateLimited(f"{name}: Exchange asks to back off {e.back_off}s", retry_after=e.back_off)
        if isinstance(e, ews_errors.RateLimitError):
            return RateLimited(f"{name}: Exchange asks to back off {e.wait}s", retry_after=e.wait)
        if isinstance(e, ews_errors.UnauthorizedError):
            return AuthFailed(f"{self._options.service_endpoint} refused the credentials of {self._username}")
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
            return Unavailable(f"{self._options.service_endpoint}: {type(e).__name__}")
        if isinstance(e, ews_errors.ResponseMessageError):
            return ItemRejected(f"{name}: {type(e).__name__}: {e}")
        return e


def _ews(t: datetime, tz: EWSTimeZone) -> EWSDateTime:
    local = t.astimezone(tz)
    if isinstance(local, EWSDateTime) and isinstance(local.tzinfo, EWSTimeZone):
        return local
    return EWSDateTime(local.year, local.month, local.day, local.hour, local.minute, local.second, local.microsecond,
                       tzinfo=tz, fold=local.fold)


def _date(value: Any) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.date().isoformat()
    return value.isoformat()


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value


def _utc(t: Any) -> str:
    if isinstance(t, datetime):  # an EWSDateTime converts only to EWSTimeZones: go through the timestamp
        return datetime.fromtimestamp(t.timestamp(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return t.isoformat()
