"""What a mailbox backend offers the sync engine (blocking: every method runs on the ``mail`` pool).

Items are addressed per entity (``contact``, ``appointment``, ``task``) by the backend's own id (EWS
ItemId, a DAV resource href) and carry an etag (EWS ChangeKey, HTTP ETag) that changes on every edit.
Values cross as canonical ``schema.Values``; the CRM id an item was created for travels in the item
itself (EWS extended property, ``X-ABOOK-CRMID`` in vCard and iCalendar), so a create interrupted before
its link was saved is found again instead of made twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from zope.interface import Attribute, Interface

from abook.mailbox.errors import MailboxError
from abook.mailbox.pim.schema import Values

#: the property carrying the CRM id in vCard and iCalendar items
CRMID_PROPERTY = "X-ABOOK-CRMID"


@dataclass(frozen=True)
class Listed:
    id: str
    etag: str


@dataclass(frozen=True)
class Item:
    id: str
    etag: str
    values: Values
    crm_id: Optional[str] = None
    categories: tuple[str, ...] = ()
    #: an appointment's iCalendar UID (every copy of a meeting shares it)
    uid: Optional[str] = None


@dataclass(frozen=True)
class Changes:
    """Items created or changed since the token (with their new etags), ids deleted, and the new token.
    ``complete``: ``changed`` lists every item there is (a full listing, not a delta)."""

    changed: tuple[Listed, ...]
    deleted: tuple[str, ...] = ()
    token: Optional[str] = None
    complete: bool = False
    extra: dict[str, str] = field(default_factory=dict)


class ItemGone(MailboxError):
    """The item is no longer there (deleted by someone else since it was listed)."""


class StaleItem(MailboxError):
    """The item changed since it was read (etag / change key precondition failed): re-read, then decide."""


class ItemRejected(MailboxError):
    """The server refused this one item (bad value, too large): the others go on."""


class IPimStore(Interface):
    entities = Attribute("the entities this mailbox holds, a subset of ('contact', 'appointment', 'task')")

    def changes_blocking(entity: str, token: Optional[str]) -> Changes:
        """Changes since ``token``; with None, every item (``complete``). Raises CursorInvalid when the
        token is no longer accepted (the engine then lists everything again)."""

    def get_blocking(entity: str, ids: list[str]) -> list[Item]:
        """The items of ``ids`` that still exist, in canonical values."""

    def create_blocking(entity: str, values: Values, crm_id: str, notify: bool = False) -> Listed:
        """A new item carrying ``crm_id``; ``notify``: send meeting invitations (organiser, future)."""

    def update_blocking(entity: str, item_id: str, etag: str, values: Values, crm_id: Optional[str] = None) -> Listed:
        """Set the given fields (None clears) and, if given, the CRM id the item carries; StaleItem if the
        etag no longer matches; ItemGone."""

    def delete_blocking(entity: str, item_id: str, etag: Optional[str], notify: bool = False) -> None:
        """Remove the item (already gone is fine); ``notify``: send meeting cancellations."""

    def find_blocking(entity: str, crm_id: str) -> Optional[Listed]:
        """The item carrying ``crm_id``, if there is one (crash recovery)."""

    def project(entity: str, values: Values) -> dict[str, Optional[str]]:
        """What this backend keeps of ``values`` (pure): reading back a written item gives exactly this."""

    def close_blocking() -> None:
        """Release connections."""
