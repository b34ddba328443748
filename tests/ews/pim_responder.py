"""The EWS replay responder, extended to contacts, calendar items and tasks (docs/sync.md section 7).

It answers, in the shapes Microsoft documents for Exchange Web Services ("CreateItem operation
(contact)", "CreateItem operation (calendar item)", "UpdateItem operation", "DeleteItem operation",
"FindItem operation", "SyncFolderItems operation", "GetItem operation (contact)"), what abook's
``mailbox/pim/ews.py`` sends through exchangelib:

- CreateItem into the distinguished ``contacts``, ``calendar`` and ``tasks`` folders (recording
  ``SendMeetingInvitations``); items are kept as the XML elements exchangelib sent;
- UpdateItem: ``SetItemField`` / ``DeleteItemField`` on plain and indexed fields (phone numbers, email
  addresses, physical address parts) and extended properties; with ``ConflictResolution=NeverOverwrite``
  a stale ChangeKey fails with ErrorIrresolvableConflict; every update gives a new ChangeKey;
- DeleteItem (recording ``SendMeetingCancellations``); GetItem returns the stored elements;
- SyncFolderItems per mailbox and folder, with a sync state the responder can invalidate;
- FindItem restricted by ``IsEqualTo`` on an extended property (abook's CRM id).

Test controls: ``user_create`` / ``user_update`` / ``user_delete`` (another client's edits, a new
ChangeKey), ``touch`` (a new ChangeKey, nothing else), ``forget_states``.

Recurring masters (``make_recurring``, ``user_modify_occurrence``, ``user_delete_occurrence``): the master
keeps its ``Recurrence``, ``DeletedOccurrences`` and ``ModifiedOccurrences`` as Exchange reports them; an
exception is an item of its own (GetItem finds it; SyncFolderItems reports its master as updated). UpdateItem
and DeleteItem accept an ``OccurrenceItemId`` (master + 1-based instance index) for daily and weekly patterns,
as Exchange does: an update makes the occurrence an exception, a delete adds a DeletedOccurrence.
"""

from __future__ import annotations

import base64
import copy
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Optional
from zoneinfo import ZoneInfo
from xml.sax.saxutils import quoteattr

from tests.ews.responder import M, T, EwsResponder, _error

FOLDERS = {"contacts": "Contact", "calendar": "CalendarItem", "tasks": "Task"}
#: xs:boolean elements: exchangelib may send 1/0, Exchange answers true/false
BOOLEANS = {"IsAllDayEvent", "ReminderIsSet", "IsResponseRequested", "IsComplete", "IsRecurring", "IsMeeting"}


def _as_exchange_writes(elem: ET.Element) -> ET.Element:
    for e in elem.iter():
        if e.tag.split("}")[-1] in BOOLEANS and e.text in ("1", "0"):
            e.text = "true" if e.text == "1" else "false"
    return elem
ET.register_namespace("t", T)
ET.register_namespace("m", M)


def _t(name: str) -> str:
    return f"{{{T}}}{name}"


@dataclass
class PimItem:
    id: str
    mailbox: str
    folder: str
    element: ET.Element
    created: int
    modified: int
    changekey: str = field(default_factory=lambda: base64.b64encode(uuid.uuid4().bytes).decode())
    deleted: Optional[int] = None


class PimResponder(EwsResponder):
    def __init__(self, credentials: dict[str, str], tls: object = None) -> None:
        super().__init__(credentials, tls)  # type: ignore[arg-type]
        self.pim: dict[str, PimItem] = {}
        self.epoch = 1
        #: (operation, item id, SendMeetingInvitations / SendMeetingCancellations) for each meeting write
        self.notifications: list[tuple[str, str, str]] = []

    # -- test controls

    def _new_id(self) -> str:
        return base64.b64encode(b"AAMkPIM" + uuid.uuid4().bytes + uuid.uuid4().bytes).decode()

    def _touch(self, item: PimItem) -> None:
        self._counter += 1
        item.modified = self._counter
        item.changekey = base64.b64encode(uuid.uuid4().bytes).decode()

    def user_create(self, address: str, folder: str, xml: str) -> str:
        """Another client creates an item: ``xml`` is the item element's children (``<t:Subject>...``)."""
        with self._lock:
            elem = ET.fromstring(f'<t:{FOLDERS[folder]} xmlns:t="{T}">{xml}</t:{FOLDERS[folder]}>')
            return self._store(address.lower(), folder, elem).id

    def user_update(self, item_id: str, tag: str, text: Optional[str]) -> None:
        with self._lock:
            item = self.pim[item_id]
            old = item.element.find(_t(tag))
            if old is not None:
                item.element.remove(old)
            if text is not None:
                ET.SubElement(item.element, _t(tag)).text = text
            self._touch(item)

    def user_delete(self, item_id: str) -> None:
        with self._lock:
            self._counter += 1
            self.pim[item_id].deleted = self._counter

    def touch(self, item_id: str) -> None:
        with self._lock:
            self._touch(self.pim[item_id])

    def forget_states(self) -> None:
        with self._lock:
            self.epoch += 1

    # -- recurring masters

    def make_recurring(self, item_id: str, recurrence_xml: str) -> None:
        """Turn a stored calendar item into a recurring master (``recurrence_xml``: the Recurrence's children)."""
        with self._lock:
            item = self.pim[item_id]
            rec = ET.fromstring(f'<t:Recurrence xmlns:t="{T}">{recurrence_xml}</t:Recurrence>')
            item.element.append(rec)
            ET.SubElement(item.element, _t("CalendarItemType")).text = "RecurringMaster"
            self._touch(item)

    def _occurrence_start(self, master: PimItem, index: int) -> tuple[datetime, datetime]:
        from dateutil.rrule import DAILY, WEEKLY, rrule
        from exchangelib.ewsdatetime import EWSTimeZone

        e = master.element
        start = datetime.fromisoformat(e.findtext(_t("Start")).replace("Z", "+00:00"))  # type: ignore[union-attr]
        end = datetime.fromisoformat(e.findtext(_t("End")).replace("Z", "+00:00"))  # type: ignore[union-attr]
        zone_el = e.find(_t("StartTimeZone"))
        tz = ZoneInfo(EWSTimeZone.from_ms_id(zone_el.get("Id")).key) if zone_el is not None else timezone.utc
        rec = e.find(_t("Recurrence"))
        weekly = rec.find(_t("WeeklyRecurrence"))  # type: ignore[union-attr]
        pattern = weekly if weekly is not None else rec.find(_t("DailyRecurrence"))  # type: ignore[union-attr]
        days = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
        kw = {"interval": int(pattern.findtext(_t("Interval")) or 1)}  # type: ignore[union-attr]
        if weekly is not None:
            kw["byweekday"] = [days.index(d) for d in (weekly.findtext(_t("DaysOfWeek")) or "").split()]
        local = start.astimezone(tz).replace(tzinfo=None)
        nth = list(rrule(WEEKLY if weekly is not None else DAILY, dtstart=local, count=index, **kw))[index - 1]
        first = nth.replace(tzinfo=tz).astimezone(timezone.utc)
        return first, first + (end - start)

    def _exception(self, master: PimItem, original: datetime, start: datetime, end: datetime) -> PimItem:
        elem = copy.deepcopy(master.element)
        for tag in ("Recurrence", "ModifiedOccurrences", "DeletedOccurrences", "CalendarItemType", "Start", "End"):
            for old in elem.findall(_t(tag)):
                elem.remove(old)
        ET.SubElement(elem, _t("Start")).text = start.strftime("%Y-%m-%dT%H:%M:%SZ")
        ET.SubElement(elem, _t("End")).text = end.strftime("%Y-%m-%dT%H:%M:%SZ")
        ET.SubElement(elem, _t("CalendarItemType")).text = "Exception"
        exception = self._store(master.mailbox, "exceptions", elem)
        modified = master.element.find(_t("ModifiedOccurrences"))
        if modified is None:
            modified = ET.SubElement(master.element, _t("ModifiedOccurrences"))
        occ = ET.SubElement(modified, _t("Occurrence"))
        ET.SubElement(occ, _t("ItemId"), Id=exception.id, ChangeKey=exception.changekey)
        for tag, t in (("Start", start), ("End", end), ("OriginalStart", original)):
            ET.SubElement(occ, _t(tag)).text = t.strftime("%Y-%m-%dT%H:%M:%SZ")
        self._touch(master)
        return exception

    def user_modify_occurrence(self, master_id: str, index: int, moved_by: timedelta, subject: str) -> str:
        """Another client moves and renames one occurrence: an exception."""
        with self._lock:
            master = self.pim[master_id]
            original, end = self._occurrence_start(master, index)
            exception = self._exception(master, original, original + moved_by, end + moved_by)
            for old in exception.element.findall(_t("Subject")):
                exception.element.remove(old)
            ET.SubElement(exception.element, _t("Subject")).text = subject
            return exception.id

    def user_delete_occurrence(self, master_id: str, index: int) -> None:
        with self._lock:
            self._delete_occurrence(self.pim[master_id], index)

    def _delete_occurrence(self, master: PimItem, index: int) -> None:
        original, _ = self._occurrence_start(master, index)
        stamp = original.strftime("%Y-%m-%dT%H:%M:%SZ")
        modified = master.element.find(_t("ModifiedOccurrences"))
        for occ in list(modified) if modified is not None else []:
            if occ.findtext(_t("OriginalStart")) == stamp:
                modified.remove(occ)  # type: ignore[union-attr]
                self.pim[occ.find(_t("ItemId")).get("Id")].deleted = self._counter  # type: ignore[union-attr]
        deleted = master.element.find(_t("DeletedOccurrences"))
        if deleted is None:
            deleted = ET.SubElement(master.element, _t("DeletedOccurrences"))
        ET.SubElement(ET.SubElement(deleted, _t("DeletedOccurrence")), _t("Start")).text = stamp
        self._touch(master)

    def _master_of(self, exception: PimItem) -> Optional[tuple[PimItem, ET.Element]]:
        for master in self.pim.values():
            modified = master.element.find(_t("ModifiedOccurrences"))
            for occ in list(modified) if modified is not None else []:
                ref = occ.find(_t("ItemId"))
                if ref is not None and ref.get("Id") == exception.id:
                    return master, occ
        return None

    def _occurrence_target(self, op: ET.Element) -> Optional[tuple[PimItem, int]]:
        occ = op.find(f".//{_t('OccurrenceItemId')}")
        if occ is None or occ.get("RecurringMasterId") not in self.pim:
            return None
        return self.pim[occ.get("RecurringMasterId", "")], int(occ.get("InstanceIndex", "0"))

    def items_in(self, address: str, folder: str) -> list[PimItem]:
        return [i for i in self.pim.values() if i.mailbox == address.lower() and i.folder == folder and i.deleted is None]

    def _store(self, address: str, folder: str, elem: ET.Element) -> PimItem:
        self._counter += 1
        _as_exchange_writes(elem)
        for child in list(elem):
            if child.tag == _t("ItemId"):
                elem.remove(child)
        item = PimItem(self._new_id(), address, folder, elem, self._counter, self._counter)
        self.pim[item.id] = item
        return item

    # -- operations

    @staticmethod
    def _folder_of(op: ET.Element) -> tuple[Optional[str], str]:
        folder = op.find(f".//{_t('DistinguishedFolderId')}")
        address = op.find(f".//{_t('DistinguishedFolderId')}//{_t('EmailAddress')}")
        return (folder.get("Id") if folder is not None else None,
                (address.text or "").lower() if address is not None else "")

    def _CreateItem(self, op: ET.Element) -> str:  # noqa: N802 (EWS operation name)
        folder, address = self._folder_of(op)
        tag = "CreateItemResponseMessage"
        if address not in self.mailboxes:
            return _error(tag, "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.")
        if folder not in FOLDERS:
            return _error(tag, "ErrorFolderNotFound", "The specified folder could not be found in the store.")
        out = []
        for elem in op.find(f"{{{M}}}Items") or []:
            elem = copy.deepcopy(elem)
            if folder == "calendar":  # as Exchange does: the mailbox's owner organises it, and it gets a UID
                if elem.find(_t("Organizer")) is None:
                    org = ET.SubElement(ET.SubElement(elem, _t("Organizer")), _t("Mailbox"))
                    ET.SubElement(org, _t("EmailAddress")).text = address
                    ET.SubElement(org, _t("RoutingType")).text = "SMTP"
                if elem.find(_t("UID")) is None:
                    ET.SubElement(elem, _t("UID")).text = uuid.uuid4().hex.upper()
            item = self._store(address, folder, elem)
            if folder == "calendar":
                self.notifications.append(("create", item.id, op.get("SendMeetingInvitations", "")))
            kind = elem.tag.split("}")[1]
            out.append(f'<m:{tag} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>'
                       f"<t:{kind}><t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/>"
                       f"</t:{kind}></m:Items></m:{tag}>")
        return "".join(out)

    def _render(self, item: PimItem) -> str:
        kind = item.element.tag.split("}")[1]
        inner = "".join(ET.tostring(child, encoding="unicode") for child in item.element)
        return (f'<t:{kind} xmlns:t="{T}"><t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/>'
                f"{inner}</t:{kind}>")

    def _GetItem(self, op: ET.Element) -> str:  # noqa: N802
        ids = [i.get("Id", "") for i in op.iter(_t("ItemId"))]
        if not any(i in self.pim for i in ids):
            return super()._GetItem(op)
        out = []
        for item_id in ids:
            item = self.pim.get(item_id)
            if item is None or item.deleted is not None:
                out.append(_error("GetItemResponseMessage", "ErrorItemNotFound",
                                  "The specified object was not found in the store.", "<m:Items/>"))
                continue
            out.append('<m:GetItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
                       f"<m:Items>{self._render(item)}</m:Items></m:GetItemResponseMessage>")
        return "".join(out)

    def _UpdateItem(self, op: ET.Element) -> str:  # noqa: N802
        target = self._occurrence_target(op)
        if target is not None:  # an occurrence by index becomes an exception, which the update then changes
            master, index = target
            original, end = self._occurrence_start(master, index)
            exception = self._exception(master, original, original, end)
            for occ in op.iter(_t("OccurrenceItemId")):
                parent = next(p for p in op.iter() if occ in list(p))
                parent.remove(occ)
                ET.SubElement(parent, _t("ItemId"), Id=exception.id)
        changes = list(op.iter(_t("ItemChange")))
        first = changes[0].find(_t("ItemId")) if changes else None
        if first is None or first.get("Id", "") not in self.pim:
            return super()._UpdateItem(op)
        tag = "UpdateItemResponseMessage"
        never = op.get("ConflictResolution") == "NeverOverwrite"
        out = []
        for change in changes:
            item_id = change.find(_t("ItemId"))
            item = self.pim.get(item_id.get("Id", "") if item_id is not None else "")
            if item is None or item.deleted is not None:
                out.append(_error(tag, "ErrorItemNotFound", "The specified object was not found in the store.",
                                  "<m:Items/>"))
                continue
            if never and item_id is not None and item_id.get("ChangeKey") not in (None, item.changekey):
                out.append(_error(tag, "ErrorIrresolvableConflict",
                                  "The send or update operation could not be performed because the change key "
                                  "passed in the request does not match the current change key for the item.",
                                  "<m:Items/>"))
                continue
            for update in change.find(_t("Updates")) or []:
                self._apply(item, update)
            self._touch(item)
            found = self._master_of(item) if item.folder == "exceptions" else None
            if found is not None:
                self._touch(found[0])  # SyncFolderItems reports the master of a changed exception
            kind = item.element.tag.split("}")[1]
            out.append(f'<m:{tag} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode><m:Items>'
                       f"<t:{kind}><t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/>"
                       f"</t:{kind}></m:Items><m:ConflictResults><t:Count>0</t:Count></m:ConflictResults></m:{tag}>")
        return "".join(out)

    def _apply(self, item: PimItem, update: ET.Element) -> None:
        kind = update.tag.split("}")[1]
        uri = update.find(_t("FieldURI"))
        indexed = update.find(_t("IndexedFieldURI"))
        ext = update.find(_t("ExtendedFieldURI"))
        new = None
        for child in update:
            if child.tag not in (_t("FieldURI"), _t("IndexedFieldURI"), _t("ExtendedFieldURI")):
                new = list(child)[0] if len(child) else None  # the one field inside the item element
        if ext is not None:
            key = (ext.get("PropertySetId"), ext.get("PropertyName"))
            for old in item.element.findall(_t("ExtendedProperty")):
                u = old.find(_t("ExtendedFieldURI"))
                if u is not None and (u.get("PropertySetId"), u.get("PropertyName")) == key:
                    item.element.remove(old)
            if kind == "SetItemField" and new is not None:
                item.element.append(copy.deepcopy(new))
            return
        if indexed is not None:
            container_tag = {"contacts:PhoneNumber": "PhoneNumbers", "contacts:EmailAddress": "EmailAddresses",
                             "contacts:ImAddress": "ImAddresses"}.get(indexed.get("FieldURI", ""), "PhysicalAddresses")
            index = indexed.get("FieldIndex")
            container = item.element.find(_t(container_tag))
            if container is None:
                container = ET.SubElement(item.element, _t(container_tag))
            entry = next((e for e in container if e.get("Key") == index), None)
            part = indexed.get("FieldURI", "").split(":")[-1] if container_tag == "PhysicalAddresses" else None
            if kind == "DeleteItemField":
                if entry is not None:
                    if part:
                        sub = entry.find(_t(part))
                        if sub is not None:
                            entry.remove(sub)
                    else:
                        container.remove(entry)
                return
            new_entry = new.find(f".//{_t('Entry')}") if new is not None else None
            if new_entry is None:
                return
            if part and entry is not None:
                for sub in list(new_entry):
                    old = entry.find(sub.tag)
                    if old is not None:
                        entry.remove(old)
                    entry.append(copy.deepcopy(sub))
            else:
                if entry is not None:
                    container.remove(entry)
                container.append(copy.deepcopy(new_entry))
            return
        name = (uri.get("FieldURI", "") if uri is not None else "").split(":")[-1]
        for old in item.element.findall(_t(name)):
            item.element.remove(old)
        if kind == "SetItemField" and new is not None:
            item.element.append(_as_exchange_writes(copy.deepcopy(new)))

    def _DeleteItem(self, op: ET.Element) -> str:  # noqa: N802
        target = self._occurrence_target(op)
        if target is not None:
            self._delete_occurrence(*target)
            return ('<m:DeleteItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
                    "</m:ResponseCode></m:DeleteItemResponseMessage>")
        ids = [i.get("Id", "") for i in op.iter(_t("ItemId"))]
        if not any(i in self.pim for i in ids):
            return super()._DeleteItem(op)
        out = []
        for item_id in ids:
            item = self.pim.get(item_id)
            if item is None or item.deleted is not None:
                out.append(_error("DeleteItemResponseMessage", "ErrorItemNotFound",
                                  "The specified object was not found in the store."))
                continue
            self._counter += 1
            item.deleted = self._counter
            found = self._master_of(item) if item.folder == "exceptions" else None
            if found is not None:  # a deleted exception is a deleted occurrence of its master
                master, occ = found
                master.element.find(_t("ModifiedOccurrences")).remove(occ)  # type: ignore[union-attr]
                deleted = master.element.find(_t("DeletedOccurrences"))
                if deleted is None:
                    deleted = ET.SubElement(master.element, _t("DeletedOccurrences"))
                ET.SubElement(ET.SubElement(deleted, _t("DeletedOccurrence")), _t("Start")).text = \
                    occ.findtext(_t("OriginalStart"))
                self._touch(master)
            if item.folder == "calendar":
                self.notifications.append(("delete", item.id, op.get("SendMeetingCancellations", "")))
            out.append('<m:DeleteItemResponseMessage ResponseClass="Success"><m:ResponseCode>NoError'
                       "</m:ResponseCode></m:DeleteItemResponseMessage>")
        return "".join(out)

    def _SyncFolderItems(self, op: ET.Element) -> str:  # noqa: N802
        folder, address = self._folder_of(op)
        if folder not in FOLDERS:
            return super()._SyncFolderItems(op)
        tag = "SyncFolderItemsResponseMessage"
        sync_error = "<m:SyncState/><m:IncludesLastItemInRange>true</m:IncludesLastItemInRange>"
        if address not in self.mailboxes:
            return _error(tag, "ErrorNonExistentMailbox", "The SMTP address has no mailbox associated with it.",
                          sync_error)
        state_el = op.find(f"{{{M}}}SyncState")
        limit = int(op.findtext(f"{{{M}}}MaxChangesReturned") or "100")
        since = 0
        if state_el is not None and state_el.text:
            try:
                kind, box, where, epoch, n = base64.b64decode(state_el.text).decode().split("|")
                assert (kind, box, where, epoch) == ("replay-pim", address, folder, str(self.epoch))
                since = int(n)
            except (ValueError, AssertionError, UnicodeDecodeError):
                return _error(tag, "ErrorInvalidSyncStateData",
                              "Synchronization state data is corrupt or otherwise invalid.", sync_error)
        events: list[tuple[int, str]] = []
        for item in self.pim.values():
            if item.mailbox != address or item.folder != folder:
                continue
            kind = item.element.tag.split("}")[1]
            ident = f"<t:{kind}><t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/></t:{kind}>"
            if item.deleted is not None:
                if item.created <= since < item.deleted:
                    events.append((item.deleted, f"<t:Delete><t:ItemId Id={quoteattr(item.id)}/></t:Delete>"))
            elif item.created > since:
                events.append((item.modified, f"<t:Create>{ident}</t:Create>"))
            elif item.modified > since:
                events.append((item.modified, f"<t:Update>{ident}</t:Update>"))
        events.sort()
        page = events[:limit]
        last = len(events) <= limit
        new_since = self._counter if last else page[-1][0]
        state = base64.b64encode(f"replay-pim|{address}|{folder}|{self.epoch}|{new_since}".encode()).decode()
        return (f'<m:{tag} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
                f"<m:SyncState>{state}</m:SyncState><m:IncludesLastItemInRange>{'true' if last else 'false'}"
                f"</m:IncludesLastItemInRange><m:Changes>{''.join(e for _, e in page)}</m:Changes></m:{tag}>")

    def _FindItem(self, op: ET.Element) -> str:  # noqa: N802
        folder, address = self._folder_of(op)
        tag = "FindItemResponseMessage"
        if folder not in FOLDERS:
            return _error(tag, "ErrorFolderNotFound", "The specified folder could not be found in the store.")
        wanted = None
        eq = op.find(f".//{_t('IsEqualTo')}")
        if eq is not None:
            ext = eq.find(_t("ExtendedFieldURI"))
            const = eq.find(f".//{_t('Constant')}")
            if ext is None or const is None:
                return _error(tag, "ErrorInvalidRestriction", "the replay responder restricts on extended properties only")
            wanted = ((ext.get("PropertySetId"), ext.get("PropertyName")), const.get("Value"))
        found = []
        for item in self.items_in(address, folder):
            if wanted is not None:
                values = {(u.get("PropertySetId"), u.get("PropertyName")): p.findtext(_t("Value"))
                          for p in item.element.findall(_t("ExtendedProperty"))
                          for u in [p.find(_t("ExtendedFieldURI"))] if u is not None}
                if values.get(wanted[0]) != wanted[1]:
                    continue
            kind = item.element.tag.split("}")[1]
            found.append(f"<t:{kind}><t:ItemId Id={quoteattr(item.id)} ChangeKey={quoteattr(item.changekey)}/></t:{kind}>")
        return (f'<m:{tag} ResponseClass="Success"><m:ResponseCode>NoError</m:ResponseCode>'
                f'<m:RootFolder IndexedPagingOffset="{len(found)}" TotalItemsInView="{len(found)}" '
                f'IncludesLastItemInRange="true"><t:Items>{"".join(found)}</t:Items></m:RootFolder></m:{tag}>')
