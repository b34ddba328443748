"""The CRM side of synchronisation: map a user's records to canonical values and back, create, update and
delete them. Every function is a ``*_txn`` on the ``db`` pool. The listing (scope and versions) is
``crm_listing.py``; ``crm_listing_txn`` and ``LdapIds`` are imported from here as well.
"""

from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any, Iterable, Optional
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select
from sqlalchemy.orm import Session

from abook.errors import NotFound
from abook.mailbox.pim.schema import (
    PRIORITIES,
    Values,
    is_date,
    moment_text,
    normalise,
    parse_moment,
    parse_parties,
    parse_when,
    parties_text,
    utc_text,
    when_text,
)
from abook.mailbox.pim import series
from abook.store import activities
from abook.store.activities import PartyRecord, aware
from abook.store.enums import ActivityState
from abook.store.models import ENTITY_MODELS, Account, Activity, Contact, ParticipationType, SystemUser
from abook.sync.crm_listing import LdapIds, crm_listing_txn, default_uid, stamp

__all__ = ["LdapIds", "activity_values", "create_crm_txn", "crm_listing_txn", "crm_values_txn", "delete_crm_txn",
           "update_crm_txn"]

CHUNK = 500
_CONTACT_COLUMNS = ("fullname", "firstname", "middlename", "lastname", "nickname", "jobtitle", "department",
                    "telephone1", "business2", "company", "fax", "mobilephone", "telephone2", "home2", "telephone3",
                    "pager", "assistantname", "assistantphone", "managername", "emailaddress1", "emailaddress2",
                    "emailaddress3", "address1_city", "address1_stateorprovince", "address1_postalcode",
                    "address1_country", "websiteurl", "description", "birthdate", "anniversary", "spousesname",
                    "childrensnames")


def _chunks(ids: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(ids), CHUNK):
        yield ids[i:i + CHUNK]


# ---------------------------------------------------------------------------------------------------------
# Values


def crm_values_txn(session: Session, entity: str, ids: list[str], now: datetime) -> dict[str, dict[str, Optional[str]]]:
    """Canonical values of the given records (missing ones are left out)."""
    out: dict[str, dict[str, Optional[str]]] = {}
    for chunk in _chunks(sorted(set(ids))):
        if entity == "contact":
            cols = [getattr(Contact, c) for c in _CONTACT_COLUMNS]
            stmt = (select(Contact.id, Account.name, Contact.address1_line1, Contact.address1_line2,
                           Contact.address1_line3, *cols)
                    .outerjoin(Account, Account.id == Contact.parentcustomer_id).where(Contact.id.in_(chunk)))
            for row in session.execute(stmt):
                values: dict[str, Any] = dict(zip(_CONTACT_COLUMNS, row[5:]))
                values["company_name"] = row[1]
                values["address1_street"] = "\n".join(line for line in row[2:5] if line) or None
                out[row[0]] = normalise("contact", values)
        else:
            rows = list(session.scalars(select(Activity).where(Activity.id.in_(chunk))))
            names = _regarding_names(session, rows)
            for a in rows:
                out[a.id] = activity_values(a, now, names.get((a.regarding_type, a.regarding_id)))
    return out


def _regarding_names(session: Session, rows: list[Activity]) -> dict[tuple[Any, Any], str]:
    """(regarding type, id) -> the regarding record's name (an account's name, a contact's full name...)."""
    wanted: dict[str, set[str]] = {}
    for a in rows:
        if a.regarding_type in ENTITY_MODELS and a.regarding_id:
            wanted.setdefault(a.regarding_type, set()).add(a.regarding_id)
    out: dict[tuple[Any, Any], str] = {}
    for kind, ids in wanted.items():
        model: Any = ENTITY_MODELS[kind]
        column = model.name if hasattr(model, "name") else model.fullname
        for rid, name in session.execute(select(model.id, column).where(model.id.in_(sorted(ids)))):
            if name:
                out[(kind, rid)] = name
    return out


def _zone(name: Optional[str]) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def activity_values(a: Activity, now: datetime, regarding: Optional[str] = None) -> dict[str, Optional[str]]:
    """An activity's canonical values; ``regarding``: its regarding record's name (shown in the mailbox item,
    never read back)."""
    priority = PRIORITIES[a.prioritycode] if a.prioritycode in (0, 1, 2) else "normal"
    if a.activitytypecode == "appointment":
        start, end = aware(a.scheduledstart), aware(a.scheduledend)
        when = None
        if start is not None:
            end = end or start
            if a.alldayevent:
                zone = _zone(a.timezone)
                when = when_text(start.astimezone(zone).date(), end.astimezone(zone).date())
            else:
                when = when_text(start, end)
        organiser = next((p.addressused for p in a.parties if p.participationtypemask == ParticipationType.organiser), None)
        attendees = [("required" if p.participationtypemask == ParticipationType.required_attendee else "optional",
                      p.addressused or "") for p in a.parties
                     if p.participationtypemask in (ParticipationType.required_attendee, ParticipationType.optional_attendee)]
        return normalise("appointment", {
            "when": when, "timezone": a.timezone, "subject": a.subject, "location": a.location,
            "description": a.description, "prioritycode": priority, "organizer": (organiser or "").lower() or None,
            "attendees": parties_text(attendees),
            "showas": "busy" if a.statecode == ActivityState.scheduled else "free",
            "uid": a.globalobjectid or default_uid(a.id), "regarding": regarding,
        })
    ended = a.actualend is not None and aware(a.actualend) <= now  # type: ignore[operator]
    done = a.statecode in (ActivityState.completed, ActivityState.canceled) or ended
    percent = None
    if a.activitytypecode == "task":
        percent = 100 if done else a.percentcomplete
    return normalise("task", {
        "subject": a.subject, "description": a.description, "prioritycode": priority,
        "startdate": _task_moment(a.scheduledstart, a.alldayevent), "duedate": _task_moment(a.scheduledend, a.alldayevent),
        "completed": moment_text(aware(a.actualend)), "percentcomplete": percent,
        "status": "completed" if done else "open", "regarding": regarding,
    })


def _task_moment(t: datetime | None, whole_days: bool) -> Optional[str]:
    t = aware(t)
    if t is None:
        return None
    return t.date().isoformat() if whole_days else utc_text(t)


# ---------------------------------------------------------------------------------------------------------
# Writing


def _etag_and_values(session: Session, entity: str, crm_id: str, now: datetime) -> tuple[str, dict[str, Optional[str]]]:
    """The record's version and canonical values as the next listing will see them."""
    session.flush()
    if entity == "contact":
        row = session.execute(select(Contact.modifiedon, Account.modifiedon)
                              .outerjoin(Account, Account.id == Contact.parentcustomer_id)
                              .where(Contact.id == crm_id)).one()
        etag = f"{stamp(row[0])}|{stamp(row[1])}"
    else:
        a = session.get(Activity, crm_id)
        assert a is not None
        ended = a.actualend is not None and aware(a.actualend) <= now  # type: ignore[operator]
        etag = stamp(a.modifiedon) if entity == "appointment" else f"{stamp(a.modifiedon)}|{int(ended)}"
    return etag, crm_values_txn(session, entity, [crm_id], now)[crm_id]


def create_crm_txn(session: Session, user_id: str, entity: str, crm_type: str, values: Values,
                   now: datetime) -> tuple[str, str, dict[str, Optional[str]]]:
    """A new record owned by the user from a tracked mailbox item: (id, etag, canonical values).

    An appointment whose UID a CRM appointment already has is that appointment (no duplicate meeting)."""
    user = session.get(SystemUser, user_id)
    if user is None:
        raise NotFound(f"no user {user_id!r}")
    if entity == "contact":
        contact = Contact(owner_id=user.id, owningbusinessunit_id=user.business_unit_id, statecode=0)
        _apply_contact(contact, values, creating=True)
        session.add(contact)
        session.flush()
        crm_id = contact.id
    else:
        if entity == "appointment" and values.get("uid"):
            found = session.scalar(select(Activity.id).where(Activity.globalobjectid == values["uid"],
                                                             Activity.activitytypecode == "appointment"))
            if found is not None:
                etag, canonical = _etag_and_values(session, entity, found, now)
                return found, etag, canonical
        record = activities.create_activity_txn(session, crm_type, user.id, **_activity_columns(entity, values, None))
        crm_id = record.id
        a = session.get(Activity, crm_id)
        assert a is not None
        if entity == "appointment":
            _set_appointment_parties(session, a, values)
    etag, canonical = _etag_and_values(session, entity, crm_id, now)
    return crm_id, etag, canonical


def update_crm_txn(session: Session, entity: str, crm_id: str, changes: Values,
                   now: datetime) -> tuple[str, dict[str, Optional[str]]]:
    """Apply the changed fields; (etag, canonical values) afterwards. NotFound if the record is gone."""
    if entity == "contact":
        contact = session.get(Contact, crm_id)
        if contact is None:
            raise NotFound(f"contact {crm_id} is gone")
        _apply_contact(contact, changes, creating=False)
    else:
        a = session.get(Activity, crm_id)
        if a is None:
            raise NotFound(f"activity {crm_id} is gone")
        columns = _activity_columns(entity, changes, a)
        activities.update_activity_txn(session, crm_id, {k: v for k, v in columns.items() if k != "statuscode"})
    return _etag_and_values(session, entity, crm_id, now)


def delete_crm_txn(session: Session, entity: str, crm_id: str) -> None:
    model = Contact if entity == "contact" else Activity
    row = session.get(model, crm_id)
    if row is not None:
        session.delete(row)
        session.flush()


def _apply_contact(contact: Contact, values: Values, creating: bool) -> None:
    for name, value in values.items():
        if name in ("fullname", "company_name"):
            continue
        if name == "address1_street":
            lines = (value or "").split("\n", 2) + [None, None]  # type: ignore[list-item]
            contact.address1_line1, contact.address1_line2, contact.address1_line3 = (x or None for x in lines[:3])
        elif name in ("birthdate", "anniversary"):
            setattr(contact, name, date.fromisoformat(value) if value else None)
        elif name in _CONTACT_COLUMNS:
            setattr(contact, name, value)
    names = [contact.firstname, contact.middlename, contact.lastname]
    if creating and not any(names) and values.get("fullname"):
        contact.lastname = values["fullname"]  # a mailbox contact with only a display name
    if creating or {"firstname", "middlename", "lastname"} & set(values):
        contact.fullname = " ".join(n for n in (contact.firstname, contact.middlename, contact.lastname) if n) or None


def _day_start(d: date, zone: ZoneInfo) -> datetime:
    return datetime.combine(d, time(0), zone).astimezone(timezone.utc)


def _activity_columns(entity: str, values: Values, current: Optional[Activity]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, value in values.items():
        if name in ("subject", "location", "description"):
            out[name] = value
        elif name == "prioritycode":
            out[name] = PRIORITIES.index(value) if value in PRIORITIES else 1
        elif name == "timezone" and entity == "appointment":
            out["timezone"] = value
    if entity == "appointment":
        if "when" in values:
            if values["when"] is None:
                out.update(scheduledstart=None, scheduledend=None, alldayevent=False)
            else:
                start, end = parse_when(values["when"])  # type: ignore[arg-type]
                if isinstance(start, datetime):
                    out.update(scheduledstart=start, scheduledend=end, alldayevent=False)
                else:
                    zone = _zone(values.get("timezone") or (current.timezone if current is not None else None))
                    out.update(scheduledstart=_day_start(start, zone), scheduledend=_day_start(end, zone),  # type: ignore[arg-type]
                               alldayevent=True)
        if "uid" in values and current is None:
            out["globalobjectid"] = values["uid"]
            series_uid, original = series.split_uid(values["uid"])  # one occurrence of a series
            if original is not None:
                zone = _zone(values.get("timezone"))
                out["seriesid"] = series_uid
                out["originalstart"] = original if isinstance(original, datetime) else _day_start(original, zone)
        return out
    whole_days = current.alldayevent if current is not None else False
    for name, column in (("startdate", "scheduledstart"), ("duedate", "scheduledend")):
        if name in values:
            value = values[name]
            if value is None:
                out[column] = None
                continue
            moment = parse_moment(value)
            whole_days = is_date(value)
            out[column] = _day_start(moment, ZoneInfo("UTC")) if whole_days else moment  # type: ignore[arg-type]
    if "startdate" in values or "duedate" in values:
        out["alldayevent"] = whole_days
    if "completed" in values:
        out["actualend"] = parse_moment(values["completed"]) if values["completed"] else None
        if isinstance(out["actualend"], date) and not isinstance(out["actualend"], datetime):
            out["actualend"] = _day_start(out["actualend"], ZoneInfo("UTC"))
    kind = current.activitytypecode if current is not None else "task"
    if "percentcomplete" in values and kind == "task":
        out["percentcomplete"] = int(values["percentcomplete"]) if values["percentcomplete"] else None
    if "status" in values:
        if values["status"] == "completed":
            out["statecode"] = int(ActivityState.completed)
            if kind == "task":
                out["percentcomplete"] = 100
        elif current is None or current.statecode != ActivityState.open:
            out["statecode"] = int(ActivityState.open)
    return out


def _set_appointment_parties(session: Session, a: Activity, values: Values) -> None:
    wanted: list[tuple[str, str, Optional[str]]] = []
    if values.get("organizer"):
        wanted.append(("organiser", values["organizer"], None))  # type: ignore[arg-type]
    wanted += [(role, address, None) for role, address in parse_parties(values.get("attendees"))]
    parties: list[PartyRecord] = activities.resolve_parties_txn(session, wanted)
    activities.update_activity_txn(session, a.id, {}, parties=parties)

