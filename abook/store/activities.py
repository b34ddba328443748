"""Appointments, tasks, faxes, letters and phone calls: create, read, change, delete, list.

The rows are ``Activity`` (``models/activities.py``, shared with email) and their ``ActivityParty`` rows: an
appointment's organiser and required/optional attendees, a phone call's or letter's sender and
recipient. A party is a CRM record (user, contact, account, lead) when its address resolves to one,
else an unresolved address, exactly as tracked email is. A recurring appointment is one record per
occurrence, the occurrences sharing ``seriesid``.

Who may read them: the role privilege ``activity`` (CRM 4's one "Activity" privilege for every activity
type) gives the read depth, over the activity's owner and owning business unit, as for other records.

``*_txn`` functions take a Session first and return frozen ``ActivityRecord`` values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import ColumnElement, false, func, select, true
from sqlalchemy.orm import Session

from abook.errors import NotFound, UserError
from abook.store.enums import (
    ACTIVITY_KINDS,
    ACTIVITY_PRIVILEGE,
    APPOINTMENT_STATUS,
    DEFAULT_STATUS,
    ActivityState,
)
from abook.store.models import (
    ENTITY_MODELS,
    Activity,
    ActivityParty,
    ParticipationType,
    ReadDepth,
    RolePrivilege,
    SystemUser,
    user_roles,
)
from abook.store.owners import user_ids_for_name_txn
from abook.store.security import business_unit_subtree_txn
from abook.store.tracking import resolve_addresses_txn

#: party role name -> CRM participation type
ROLES: dict[str, ParticipationType] = {
    "organiser": ParticipationType.organiser,
    "required": ParticipationType.required_attendee,
    "optional": ParticipationType.optional_attendee,
    "from": ParticipationType.sender,
    "to": ParticipationType.to,
}
ROLE_NAMES = {int(v): k for k, v in ROLES.items()}

#: columns ``create_activity_txn`` / ``update_activity_txn`` accept
FIELDS = ("subject", "description", "statecode", "statuscode", "prioritycode", "regarding_type", "regarding_id",
          "scheduledstart", "scheduledend", "actualstart", "actualend", "location", "alldayevent", "percentcomplete",
          "timezone", "globalobjectid", "seriesid", "originalstart", "phonenumber", "directioncode")
_DATETIMES = ("scheduledstart", "scheduledend", "actualstart", "actualend", "originalstart")


@dataclass(frozen=True)
class PartyRecord:
    role: str
    party_type: str | None = None
    party_id: str | None = None
    address: str | None = None
    name: str | None = None


@dataclass(frozen=True)
class ActivityRecord:
    id: str
    kind: str
    owner_id: str
    subject: str | None = None
    description: str | None = None
    statecode: int = 0
    statuscode: int = 1
    prioritycode: int = 1
    regarding_type: str | None = None
    regarding_id: str | None = None
    scheduledstart: datetime | None = None
    scheduledend: datetime | None = None
    actualstart: datetime | None = None
    actualend: datetime | None = None
    location: str | None = None
    alldayevent: bool = False
    percentcomplete: int | None = None
    timezone: str | None = None
    globalobjectid: str | None = None
    seriesid: str | None = None
    originalstart: datetime | None = None
    phonenumber: str | None = None
    directioncode: bool = False
    parties: tuple[PartyRecord, ...] = field(default_factory=tuple)
    modifiedon: datetime | None = None

    def party_addresses(self, role: str) -> tuple[str, ...]:
        return tuple(p.address or "" for p in self.parties if p.role == role)


def aware(t: datetime | None) -> datetime | None:
    """Aware UTC (SQLite hands back naive UTC, PostgreSQL aware)."""
    if t is None:
        return None
    return t.replace(tzinfo=timezone.utc) if t.tzinfo is None else t.astimezone(timezone.utc)


def _record(a: Activity) -> ActivityRecord:
    parties = tuple(
        PartyRecord(ROLE_NAMES.get(p.participationtypemask, str(p.participationtypemask)), p.party_type, p.party_id,
                    p.addressused, p.display_name)
        for p in sorted(a.parties, key=lambda p: p.id)
    )
    values = {f: getattr(a, f) for f in FIELDS}
    for f in _DATETIMES:
        values[f] = aware(values[f])
    values["alldayevent"] = bool(values["alldayevent"])
    values["directioncode"] = bool(values["directioncode"])
    return ActivityRecord(id=a.id, kind=a.activitytypecode, owner_id=a.owner_id, parties=parties,
                          modifiedon=aware(a.modifiedon), **values)


def _user(session: Session, name: str) -> SystemUser:
    ids = user_ids_for_name_txn(session, name)
    if len(ids) != 1:
        raise NotFound(f"no user {name!r}") if not ids else UserError(f"{name!r} names {len(ids)} users")
    user = session.get(SystemUser, ids[0])
    assert user is not None
    return user


def resolve_parties_txn(session: Session, parties: Iterable[tuple[str, str, str | None]]) -> list[PartyRecord]:
    """(role, address, display name) -> parties, each address resolved to a CRM record where one has it
    (the first of user, contact, account, lead, ... in tracking's order); else left unresolved."""
    parties = [(role, address.strip(), name) for role, address, name in parties if address and address.strip()]
    for role, _, _ in parties:
        if role not in ROLES:
            raise UserError(f"unknown party role {role!r}: expected one of {', '.join(ROLES)}")
    found = resolve_addresses_txn(session, [a.lower() for _, a, _ in parties])
    out = []
    for role, address, name in parties:
        records = found.get(address.lower(), [])
        # a user first: an appointment's organiser and attendees are the CRM's users where they can be
        records = sorted(records, key=lambda r: r[0] != "systemuser")
        kind, rid = records[0] if records else (None, None)
        out.append(PartyRecord(role, kind, rid, address, name))
    return out


def _set_parties(session: Session, activity: Activity, parties: Sequence[PartyRecord]) -> None:
    activity.parties.clear()
    session.flush()
    for p in parties:
        activity.parties.append(ActivityParty(participationtypemask=int(ROLES[p.role]), party_type=p.party_type,
                                              party_id=p.party_id, addressused=p.address, display_name=p.name))


def _check(kind: str, values: Mapping[str, Any]) -> None:
    if kind not in ACTIVITY_KINDS:
        raise UserError(f"unknown activity type {kind!r}: expected one of {', '.join(ACTIVITY_KINDS)}")
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise UserError(f"unknown activity field(s) {', '.join(sorted(unknown))}")
    for f in _DATETIMES:
        t = values.get(f)
        if t is not None and (not isinstance(t, datetime) or t.tzinfo is None):
            raise UserError(f"{f}: expected a time with its zone, got {t!r}")
    state = values.get("statecode")
    if state is not None:
        if state not in ActivityState._value2member_map_ or (state == ActivityState.scheduled and kind != "appointment"):
            raise UserError(f"bad statecode {state!r} for a {kind}")
    pct = values.get("percentcomplete")
    if pct is not None and not 0 <= int(pct) <= 100:
        raise UserError(f"percentcomplete must lie between 0 and 100, got {pct}")
    start, end = values.get("scheduledstart"), values.get("scheduledend")
    if kind == "appointment" and start is not None and end is not None and end < start:
        raise UserError("an appointment cannot end before it starts")


def _utc(values: dict[str, Any]) -> dict[str, Any]:
    """Times in UTC: SQLite keeps a time's wall clock and drops its offset."""
    return {k: (v.astimezone(timezone.utc) if k in _DATETIMES and v is not None else v) for k, v in values.items()}


def default_status(kind: str, state: int) -> int:
    table = APPOINTMENT_STATUS if kind == "appointment" else DEFAULT_STATUS
    return table[ActivityState(state)]


def create_activity_txn(session: Session, kind: str, owner: str, *, parties: Sequence[PartyRecord] = (),
                        activity_id: str | None = None, **values: Any) -> ActivityRecord:
    """A new activity owned by ``owner`` (user name, id or email), in the owner's business unit."""
    _check(kind, values)
    values = _utc(values)
    user = _user(session, owner)
    if kind == "appointment" and "statecode" not in values:
        values["statecode"] = int(ActivityState.scheduled)
    values.setdefault("statecode", int(ActivityState.open))
    values.setdefault("statuscode", default_status(kind, values["statecode"]))
    activity = Activity(activitytypecode=kind, owner_id=user.id, owningbusinessunit_id=user.business_unit_id, **values)
    if activity_id is not None:
        activity.id = activity_id
    session.add(activity)
    session.flush()
    if parties:
        _set_parties(session, activity, parties)
        session.flush()
    return _record(activity)


def _activity(session: Session, activity_id: str) -> Activity:
    activity = session.get(Activity, activity_id)
    if activity is None or activity.activitytypecode not in ACTIVITY_KINDS:
        raise NotFound(f"no activity {activity_id!r}")
    return activity


def get_activity_txn(session: Session, activity_id: str) -> ActivityRecord:
    return _record(_activity(session, activity_id))


def update_activity_txn(session: Session, activity_id: str, values: Mapping[str, Any],
                        parties: Sequence[PartyRecord] | None = None, owner: str | None = None) -> ActivityRecord:
    """Change fields (and, when given, the parties and the owner); ``modifiedon`` moves with any change."""
    activity = _activity(session, activity_id)
    _check(activity.activitytypecode, values)
    values = _utc(dict(values))
    changed = False
    for key, value in values.items():
        if getattr(activity, key) != value and not (key in _DATETIMES and aware(getattr(activity, key)) == value):
            setattr(activity, key, value)
            changed = True
    if "statecode" in values and "statuscode" not in values:
        activity.statuscode = default_status(activity.activitytypecode, activity.statecode)
    if owner is not None:
        user = _user(session, owner)
        if user.id != activity.owner_id:
            activity.owner_id, activity.owningbusinessunit_id, changed = user.id, user.business_unit_id, True
    if parties is not None:
        old = [(p.role, p.party_type, p.party_id, p.address, p.name) for p in _record(activity).parties]
        if old != [(p.role, p.party_type, p.party_id, p.address, p.name) for p in parties]:
            _set_parties(session, activity, parties)
            changed = True
    if changed:
        activity.modifiedon = datetime.now(timezone.utc)
    session.flush()
    return _record(activity)


def delete_activity_txn(session: Session, activity_id: str) -> None:
    session.delete(_activity(session, activity_id))
    session.flush()


# ---------------------------------------------------------------------------------------------------------
# Who may read them


def activity_depth_txn(session: Session, user_id: str) -> ReadDepth:
    """The widest ``activity`` read depth over the user's roles (none for an inactive or unknown user)."""
    depth = session.scalar(
        select(func.max(RolePrivilege.read_depth))
        .join(user_roles, user_roles.c.role_id == RolePrivilege.role_id)
        .join(SystemUser, SystemUser.id == user_roles.c.systemuser_id)
        .where(user_roles.c.systemuser_id == user_id, RolePrivilege.entity == ACTIVITY_PRIVILEGE,
               SystemUser.statecode == 0)
    )
    return ReadDepth(depth) if depth is not None else ReadDepth.none


def readable_activities_txn(session: Session, user_id: str) -> ColumnElement[bool]:
    """The activities the user may read: their ``activity`` depth over owner and owning business unit."""
    depth = activity_depth_txn(session, user_id)
    if depth == ReadDepth.none:
        return false()
    if depth == ReadDepth.organisation:
        return true()
    if depth == ReadDepth.user:
        return Activity.owner_id == user_id
    unit = session.scalar(select(SystemUser.business_unit_id).where(SystemUser.id == user_id))
    if depth == ReadDepth.business_unit:
        return Activity.owningbusinessunit_id == unit
    return Activity.owningbusinessunit_id.in_(sorted(business_unit_subtree_txn(session, unit or "")))


def list_activities_txn(session: Session, *, kind: str | None = None, owner: str | None = None,
                        readable_by: str | None = None, limit: int | None = None) -> list[ActivityRecord]:
    """Activities (no email), newest start first; only those ``readable_by`` (a user name) may read, if given."""
    stmt = select(Activity).where(Activity.activitytypecode.in_(ACTIVITY_KINDS))
    if kind is not None:
        if kind not in ACTIVITY_KINDS:
            raise UserError(f"unknown activity type {kind!r}: expected one of {', '.join(ACTIVITY_KINDS)}")
        stmt = stmt.where(Activity.activitytypecode == kind)
    if owner is not None:
        stmt = stmt.where(Activity.owner_id == _user(session, owner).id)
    if readable_by is not None:
        stmt = stmt.where(readable_activities_txn(session, _user(session, readable_by).id))
    stmt = stmt.order_by(Activity.scheduledstart.desc(), Activity.id)
    if limit is not None:
        stmt = stmt.limit(limit)
    return [_record(a) for a in session.scalars(stmt)]


def regarding_exists_txn(session: Session, regarding_type: str, regarding_id: str) -> bool:
    model = ENTITY_MODELS.get(regarding_type)
    if model is None:
        raise UserError(f"unknown regarding type {regarding_type!r}: expected one of {', '.join(ENTITY_MODELS)}")
    return session.get(model, regarding_id) is not None


def users_involved(record: ActivityRecord) -> set[str]:
    """The users an activity concerns for synchronisation: its owner and its user parties."""
    return {record.owner_id} | {p.party_id for p in record.parties if p.party_type == "systemuser" and p.party_id}


__all__ = [
    "ActivityRecord", "PartyRecord", "ROLES", "activity_depth_txn", "create_activity_txn", "delete_activity_txn",
    "get_activity_txn", "list_activities_txn", "readable_activities_txn", "resolve_parties_txn",
    "update_activity_txn",
]
