"""Codes and names of the activities and of synchronisation, kept apart from the mappings that use them.

Activity codes follow Microsoft Dynamics CRM 4.0: ``statecode`` Open 0, Completed 1, Canceled 2 and, for
appointments only, Scheduled 3; ``prioritycode`` Low 0, Normal 1, High 2.
"""

from __future__ import annotations

import enum

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
