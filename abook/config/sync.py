"""``[sync]``: contacts, appointments and tasks kept in step with each user's mailbox (abook/sync/).

Which users: active users with ``sync_enabled`` (``abook user set NAME sync_enabled=yes``). How their
mailbox is reached: ``[sync.mailbox]``, one template for every user (``{user}`` is the user name,
``{email}`` the internal email address):

* ``type = "dav"``: CardDAV/CalDAV collection URLs (``contacts_url``, ``calendar_url``, ``tasks_url``), with
  ``username`` and a password (``password``, or a file per user in ``password_dir``);
* ``type = "ews"``: Exchange through EWS, one service account impersonating every user
  (``[sync.mailbox.ews]`` as for mail, ``access_type = "impersonation"``), or delegate access.
"""

from __future__ import annotations

from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from abook.config.base import SecretValue, Section
from abook.config.routing import EwsTemplate, GraphTemplate

_ENTITIES = ("contact", "appointment", "task")
_DIRECTIONS = ("both", "to_mailbox", "to_crm", "fixed", "none")


class SyncMailboxTemplate(Section):
    #: dav (CardDAV/CalDAV), ews (Exchange on-premises) or graph (Exchange Online)
    type: Literal["dav", "ews", "graph"] = "dav"
    #: DAV: the user's collections; {user} and {email} are filled in
    contacts_url: str = ""
    calendar_url: str = ""
    tasks_url: str = ""
    #: DAV: the user name sent (EWS: the service account)
    username: str = "{user}"
    password: Optional[SecretValue] = None
    #: a directory holding one password file per user, named by the user name sent
    password_dir: Optional[str] = None
    ca_file: Optional[str] = None
    timeout: float = Field(default=30.0, gt=0)
    #: a recurring series in a mailbox comes into the CRM as its occurrences from today (less
    #: recurrence_lookback_days) up to recurrence_horizon_days ahead; the window moves on day by day
    recurrence_horizon_days: int = Field(default=365, ge=1, le=3650)
    recurrence_lookback_days: int = Field(default=0, ge=0, le=3650)
    ews: Optional[EwsTemplate] = None
    #: type = "graph": the app registration ([mailboxes.graph] keys without mailbox); each user's address is read
    graph: Optional[GraphTemplate] = None
    #: type = "graph": appointments are read through a window (Graph tracks calendar changes only inside
    #: one) from this many days back to this many ahead of an anchor day that moves every step days
    calendar_days_back: int = Field(default=30, ge=0)
    calendar_days_ahead: int = Field(default=365, ge=1)
    calendar_window_step_days: int = Field(default=7, ge=1)

    @model_validator(mode="after")
    def _complete(self) -> "SyncMailboxTemplate":
        if self.type == "ews" and self.ews is None:
            raise ValueError('type "ews" needs a [sync.mailbox.ews] table with service_endpoint')
        if self.type == "graph" and self.graph is None:
            raise ValueError('type "graph" needs a [sync.mailbox.graph] table with tenant, client_id and a '
                             "client_secret or certificate_file")
        if self.type == "dav" and not (self.contacts_url or self.calendar_url or self.tasks_url):
            raise ValueError('type "dav" needs at least one of contacts_url, calendar_url, tasks_url')
        for url in (self.contacts_url, self.calendar_url, self.tasks_url):
            if url and not url.startswith(("https://", "http://")):
                raise ValueError(f"expected an http(s) URL such as \"https://dav.example.com/{{user}}/contacts/\", got {url!r}")
        return self


class Directions(Section):
    """Per entity, field -> direction (both, to_mailbox, to_crm, fixed, none); unnamed fields keep docs/sync.md's."""

    contact: dict[str, str] = Field(default_factory=dict)
    appointment: dict[str, str] = Field(default_factory=dict)
    task: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _known(self) -> "Directions":
        from abook.mailbox.pim.schema import BY_NAME

        for entity in _ENTITIES:
            for name, direction in getattr(self, entity).items():
                if name not in BY_NAME[entity]:
                    raise ValueError(f"{entity}.{name}: not a mapped field; expected one of "
                                     f"{', '.join(BY_NAME[entity])}")
                if direction not in _DIRECTIONS:
                    raise ValueError(f"{entity}.{name}: expected one of {', '.join(_DIRECTIONS)}, got {direction!r}")
        return self


class ConflictPolicies(Section):
    contact: Literal["crm", "mailbox", "manual"] = "crm"
    appointment: Literal["crm", "mailbox", "manual"] = "crm"
    task: Literal["crm", "mailbox", "manual"] = "crm"


class SyncConfig(Section):
    #: run the sync service in the daemon
    enabled: bool = False
    #: seconds between two syncs of one user (each user's turn is spread over the interval)
    interval: float = Field(default=900.0, gt=0)
    entities: list[Literal["contact", "appointment", "task"]] = Field(default_factory=lambda: list(_ENTITIES))
    #: users synchronised at once (threads of the ``sync`` pool)
    threads: int = Field(default=2, ge=1, le=64)
    #: seconds a daemon holds a user's sync lease unrenewed (renewed every third of it while the sync runs);
    #: a daemon that dies hands its users to the others after this long
    lease_seconds: float = Field(default=60.0, ge=1, le=3600)
    #: seconds between rescans of the store for users with sync_enabled
    rescan_interval: float = Field(default=300.0, gt=0)
    #: cap, in seconds, of the back-off after mailbox errors (it doubles from interval / 4)
    max_backoff: float = Field(default=3600.0, gt=0)
    #: a failing item is retried this many cycles; then the token moves on and it stays listed
    max_item_failures: int = Field(default=5, ge=1)
    #: the category that marks mailbox items tracked (mailbox -> CRM)
    tracked_category: str = "Tracked to CRM"
    #: a task deleted in the mailbox deletes the CRM activity if it is open (docs/sync.md section 3)
    delete_open_tasks: bool = True
    #: stop, writing nothing, when one side lists nothing while at least mass_delete_min_links are linked
    mass_delete_guard: bool = True
    mass_delete_min_links: int = Field(default=2, ge=1)
    conflict: ConflictPolicies = ConflictPolicies()
    directions: Directions = Directions()
    mailbox: Optional[SyncMailboxTemplate] = None

    @field_validator("entities")
    @classmethod
    def _unique(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("an entity is named twice")
        return v

    @model_validator(mode="after")
    def _mailbox(self) -> "SyncConfig":
        if self.enabled and self.mailbox is None:
            raise ValueError("sync is enabled but [sync.mailbox] says nothing about how to reach the mailboxes")
        return self
