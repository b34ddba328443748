"""Codes and names stored in the tables (record state, read depth, email status, party roles, mail settings),
of the activities and of synchronisation, kept apart from the mappings that use them: the layers above
import them from here, never from ``models``.

Activity codes follow Microsoft Dynamics CRM 4.0: ``statecode`` Open 0, Completed 1, Canceled 2 and, for
appointments only, Scheduled 3; ``prioritycode`` Low 0, Normal 1, High 2.
"""

from __future__ import annotations

import enum

# Stored as their value: small ints where the CRM uses codes, short strings elsewhere.


class State(enum.IntEnum):
    active = 0
    inactive = 1


class ReadDepth(enum.IntEnum):
    """A security role's read privilege depth for one entity. Wider is larger."""

    none = 0
    user = 1
    business_unit = 2
    parent_child = 3
    organisation = 4


class EmailStatus(enum.IntEnum):
    draft = 1
    completed = 2
    sent = 3
    received = 4
    canceled = 5
    pending_send = 6
    sending = 7
    failed = 8


class ParticipationType(enum.IntEnum):
    sender = 1
    to = 2
    cc = 3
    bcc = 4
    required_attendee = 5
    optional_attendee = 6
    organiser = 7
    owner = 9


ENTITIES = ("account", "contact", "lead", "queue", "systemuser", "equipment")
USER_OWNED = ("account", "contact", "lead")
BU_OWNED = ("queue", "systemuser", "equipment")

ADDRESS_BOOK_MATCHING = ("synchronised", "all")
TRACKING_OPTIONS = ("all", "responses", "crm_parties", "none")
INCOMING_METHODS = ("router", "forward", "client", "none")
OUTGOING_METHODS = ("router", "client", "none")

#: entity name -> (primary email field, other email fields)
EMAIL_FIELDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "account": ("emailaddress1", ("emailaddress2", "emailaddress3")),
    "contact": ("emailaddress1", ("emailaddress2", "emailaddress3")),
    "lead": ("emailaddress1", ("emailaddress2", "emailaddress3")),
    "queue": ("emailaddress", ()),
    "systemuser": ("internalemailaddress", ("personalemailaddress",)),
    "equipment": ("emailaddress", ()),
}


#: the activity types abook keeps besides email (``Activity.activitytypecode``)
ACTIVITY_KINDS = ("appointment", "task", "fax", "letter", "phonecall")
#: the activity types a mailbox shows as tasks
TASK_KINDS = ("task", "fax", "letter", "phonecall")
#: the role privilege entity that gives the read depth over every activity type (CRM 4: "Activity")
ACTIVITY_PRIVILEGE = "activity"


class ActivityState(enum.IntEnum):
    open = 0
    completed = 1
    canceled = 2
    scheduled = 3  # appointments only


#: statecode -> the statuscode an activity gets with it (CRM 4 defaults)
DEFAULT_STATUS = {ActivityState.open: 1, ActivityState.completed: 5, ActivityState.canceled: 6,
                  ActivityState.scheduled: 5}
APPOINTMENT_STATUS = {ActivityState.open: 1, ActivityState.completed: 3, ActivityState.canceled: 4,
                      ActivityState.scheduled: 5}


class Priority(enum.IntEnum):
    low = 0
    normal = 1
    high = 2


#: what a mailbox holds: the kinds of item synchronised
SYNC_ENTITIES = ("contact", "appointment", "task")


def sync_entity_of(crm_type: str) -> str:
    """The mailbox kind a CRM record type synchronises to (faxes, letters, phone calls are tasks)."""
    if crm_type in TASK_KINDS:
        return "task"
    if crm_type in ("contact", "appointment"):
        return crm_type
    raise ValueError(f"{crm_type!r} does not synchronise to a mailbox")


#: a mapped field's direction: both ways, one way, set once when the item is created, or not at all
DIRECTIONS = ("both", "to_mailbox", "to_crm", "fixed", "none")
#: who wins a conflict: the CRM, the mailbox, or nobody until an admin resolves it
CONFLICT_POLICIES = ("crm", "mailbox", "manual")
