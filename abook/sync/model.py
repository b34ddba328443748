"""The planner's inputs and outputs: plain frozen values, no backend, no store, no Twisted.

Inputs: the CRM listing (``CrmEntry``: id, version, whether the record is in the user's sync scope, and
its canonical values when it is new or changed), the mailbox listing (``MailboxEntry``, likewise), the
links (``store.sync_links.LinkRecord``) and the ``Policy``. Output: ``Action`` values the applier
performs one at a time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping, Optional

from abook.mailbox.pim.schema import FIELDS, Values
from abook.store.sync_links import LinkRecord

#: what a crm_type's fields may do beyond the entity's defaults (faxes, letters and phone calls have no
#: percent complete: their mailbox task's value is neither read nor written)
TYPE_OVERRIDES: dict[str, dict[str, str]] = {t: {"percentcomplete": "none"} for t in ("fax", "letter", "phonecall")}


@dataclass(frozen=True)
class Policy:
    entity: str
    #: field -> direction (``enums.DIRECTIONS``); fields not named keep their default
    directions: Mapping[str, str] = field(default_factory=dict)
    #: crm / mailbox / manual
    conflict: str = "crm"
    #: docs/sync.md section 3: a task deleted in the mailbox deletes the CRM activity if it is open
    delete_open_tasks: bool = True
    #: the category that marks a mailbox item tracked (mailbox -> CRM)
    tracked_category: str = "Tracked to CRM"
    #: abort, writing nothing, when one side lists nothing while at least ``mass_delete_min_links`` links
    #: exist (vdirsyncer StorageEmpty); deleting one's only linked item is ordinary use, so the default is 2
    mass_delete_guard: bool = True
    mass_delete_min_links: int = 2

    def direction(self, name: str, crm_type: str | None = None) -> str:
        override = TYPE_OVERRIDES.get(crm_type or "", {}).get(name)
        if override is not None:
            return override
        if name in self.directions:
            return self.directions[name]
        return next(f.direction for f in FIELDS[self.entity] if f.name == name)


@dataclass(frozen=True)
class CrmEntry:
    id: str
    crm_type: str
    #: the record's version (modifiedon, with its parent account's for contacts)
    etag: str
    #: matches the user's sync filter (contacts), the user organises or attends (appointments), owns (tasks)
    in_scope: bool
    #: the user owns (contacts, tasks) or organises (appointments) the record
    owned: bool = False
    #: open and not in the past (docs/sync.md section 3's "pending")
    pending: bool = False
    #: a completed or cancelled appointment: mailbox edits are ignored
    locked: bool = False
    #: an appointment's iCalendar UID
    uid: Optional[str] = None
    #: canonical values; given when the record is new to the link table or its version changed
    values: Optional[Values] = None


@dataclass(frozen=True)
class MailboxEntry:
    id: str
    etag: str
    values: Optional[Values] = None
    crm_id: Optional[str] = None
    tracked: bool = False
    uid: Optional[str] = None


@dataclass(frozen=True)
class Action:
    """Base of every action. ``link`` is the link row it starts from (None for a first create)."""

    link: Optional[LinkRecord]

    @property
    def kind(self) -> str:
        return KINDS[type(self)]

    @property
    def writes(self) -> bool:
        """Whether it writes to either side (refreshing or dropping a link only writes abook's own table)."""
        return False


@dataclass(frozen=True)
class CreateMailbox(Action):
    crm: CrmEntry = None  # type: ignore[assignment]
    values: Values = field(default_factory=dict)
    #: send meeting invitations (the organiser's sync, a future meeting with attendees)
    notify: bool = False
    #: the link's CRM values once created
    crm_values: Values = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return True


@dataclass(frozen=True)
class CreateCrm(Action):
    mailbox: MailboxEntry = None  # type: ignore[assignment]
    crm_type: str = ""
    values: Values = field(default_factory=dict)
    #: the snapshot flags the new record starts with (an appointment's ``__pending``, ``__future``)
    crm_meta: Values = field(default_factory=dict)

    @property
    def writes(self) -> bool:
        return True


@dataclass(frozen=True)
class Link(Action):
    """Pair an existing CRM record and an existing item (crash recovery, a moved item, an attendee's copy)."""

    crm: CrmEntry = None  # type: ignore[assignment]
    mailbox: MailboxEntry = None  # type: ignore[assignment]
    crm_values: Values = field(default_factory=dict)
    mailbox_values: Values = field(default_factory=dict)


@dataclass(frozen=True)
class Update(Action):
    """Write changed fields to either side or both, then save both sides' new values in the link."""

    crm: CrmEntry = None  # type: ignore[assignment]
    mailbox: MailboxEntry = None  # type: ignore[assignment]
    to_mailbox: Values = field(default_factory=dict)
    to_crm: Values = field(default_factory=dict)
    #: the link's values once the writes are done (mailbox values as the backend keeps them)
    crm_values: Values = field(default_factory=dict)
    mailbox_values: Values = field(default_factory=dict)
    #: field -> {"crm": value, "mailbox": value} when both sides changed it differently
    conflict: Mapping[str, Mapping[str, Optional[str]]] = field(default_factory=dict)
    winner: Optional[str] = None

    @property
    def writes(self) -> bool:
        return bool(self.to_mailbox or self.to_crm)


@dataclass(frozen=True)
class Conflict(Action):
    """A manual-policy conflict: nothing is written; it is listed for ``abook sync resolve``."""

    crm: CrmEntry = None  # type: ignore[assignment]
    mailbox: MailboxEntry = None  # type: ignore[assignment]
    fields: Mapping[str, Mapping[str, Optional[str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class DeleteMailbox(Action):
    reason: str = ""
    notify: bool = False
    #: the item's current id and change key (it may have moved or been opened since the link was saved)
    item_id: Optional[str] = None
    etag: Optional[str] = None

    @property
    def writes(self) -> bool:
        return True


@dataclass(frozen=True)
class DeleteCrm(Action):
    reason: str = ""

    @property
    def writes(self) -> bool:
        return True


@dataclass(frozen=True)
class Unlink(Action):
    """Drop the link and keep both copies; ``tombstone``: remember the CRM version, so the record is not
    copied to the mailbox again until it changes; ``detach``: the item stays in the mailbox carrying the CRM
    id while the sync leaves it alone (it left the filter, or lost its Tracked category): the link is kept
    as ``detached``, so that if the pair comes back in scope it merges from its last-synced values instead
    of the record being copied a second time."""

    reason: str = ""
    tombstone: bool = False
    detach: bool = False
    #: the item's current id (it may have moved since the link was saved), for ``detach``
    item_id: Optional[str] = None


@dataclass(frozen=True)
class Refresh(Action):
    """Only versions moved (a new change key, the same content): save them, write nothing."""

    crm_etag: Optional[str] = None
    mailbox_etag: Optional[str] = None
    owned: Optional[bool] = None


KINDS: dict[type, str] = {
    CreateMailbox: "create_mailbox", CreateCrm: "create_crm", Link: "link", Update: "update",
    Conflict: "conflict", DeleteMailbox: "delete_mailbox", DeleteCrm: "delete_crm", Unlink: "unlink",
    Refresh: "refresh",
}


class MassDelete(Exception):
    """One side lists nothing while links exist: the sync stops before writing anything."""


@dataclass(frozen=True)
class PlanInput:
    """Both listings hold every linked item that still exists (a delta listing is completed from the links
    by the engine) and every unlinked item worth a look, with values where they are new or changed."""

    user_id: str
    entity: str
    links: tuple[LinkRecord, ...]
    crm: tuple[CrmEntry, ...]
    mailbox: tuple[MailboxEntry, ...]
    policy: Policy
    now: datetime
    #: skip the mass-delete guard once (``abook sync now --force``)
    force: bool = False
