"""Users and queues whose incoming method is ``router`` that nothing polls, and mailboxes polled for an
owner whose incoming method is ``none`` (their mail is left untracked as ``disabled``): said in the daemon's
log at start (the first also by ``abook status``), since the router otherwise stays silent about mail it
never tracks.

A router owner is polled by a ``[[mailboxes]]`` table naming it as ``owner``, or, with
``[router.user_mailbox_template]``, by a mailbox derived from its email address; neither happens when the
router is switched off in this daemon.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service
from twisted.logger import Logger

from abook.config import AbookConfig
from abook.store import Store, outage
from abook.store.owners import mail_setting_txn, owner_for_config_txn, router_owner_names_txn

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


@dataclass(frozen=True)
class Unpolled:
    #: the user name, or "queue:<address or name>", as a [[mailboxes]] owner is written
    owner: str
    reason: str


@dataclass(frozen=True)
class Polling:
    """What of the config decides who is polled (frozen, for a pool thread)."""

    enabled: bool
    template: bool
    #: owners of the [[mailboxes]] tables with role router, lowercased
    owners: frozenset[str]
    #: (mailbox name, owner) of the enabled [[mailboxes]] tables with role router and an owner
    polled: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, config: AbookConfig) -> "Polling":
        routers = [m for m in config.mailboxes if m.role == "router"]
        return cls(config.router.enabled, config.router.user_mailbox_template is not None,
                   frozenset((m.owner or "").lower() for m in routers),
                   tuple((m.name, m.owner) for m in routers if m.owner and config.router.enabled))


@dataclass(frozen=True)
class Ignored:
    """A polled mailbox whose owner's incoming method is not ``router``: its mail stays untracked."""

    mailbox: str
    owner: str
    method: str
    #: the command that turns tracking on
    command: str


def ignored_txn(session: Session, polling: Polling) -> tuple[Ignored, ...]:
    """Every [[mailboxes]] table polled for a known owner whose incoming method is ``none``."""
    out = []
    for mailbox, owner in polling.polled:
        known = owner_for_config_txn(session, owner)
        if known is None:
            continue  # said by the poller itself
        name, method = mail_setting_txn(session, known)
        command = f"abook {'queue' if known.type == 'queue' else 'user'} set {shlex.quote(name)} incoming_method=router"
        if method == "none":
            out.append(Ignored(mailbox, owner, method, command))
    return tuple(out)


def unpolled_txn(session: Session, polling: Polling) -> tuple[Unpolled, ...]:
    """Every active user and queue with incoming method router that no mailbox of this config polls."""
    out = []
    for owner, email in router_owner_names_txn(session):
        if owner.lower() in polling.owners:
            continue
        if not polling.enabled:
            reason = "router.enabled is false in this config"
        elif not polling.template:
            reason = "no [[mailboxes]] table names it as owner, and there is no [router.user_mailbox_template]"
        elif not email:
            reason = "it has no email address, which [router.user_mailbox_template] needs"
        else:
            continue
        out.append(Unpolled(owner, reason))
    return tuple(out)


class UnpolledReport(Service):
    """Logs, once the daemon has started, each router owner that nothing polls."""

    log = Logger()

    def __init__(self, config: AbookConfig, store: Store) -> None:
        self.setName("unpolled-report")
        self.polling = Polling.of(config)
        self.store = store

    def startService(self) -> None:
        super().startService()
        d = self.store.run(unpolled_txn, self.polling)
        d.addCallback(self._report)
        d.addCallback(lambda _: self.store.run(ignored_txn, self.polling))
        d.addCallback(self._report_ignored)
        d.addErrback(lambda f: outage.log_failure(self.log, f, "could not check which router mailboxes are polled"))

    def _report(self, found: tuple[Unpolled, ...]) -> Any:
        for u in found:
            self.log.warn("{owner} has incoming method router, but nothing polls its mailbox: {reason}. "
                          "Its mail is not tracked; see `abook status`", owner=u.owner, reason=u.reason)

    def _report_ignored(self, found: tuple[Ignored, ...]) -> None:
        for i in found:
            self.log.warn("mailbox {mailbox} is polled for {owner}, whose incoming method is {method}: its mail "
                          "stays in the mailbox untracked (reason disabled); `{command}` turns tracking on",
                          mailbox=i.mailbox, owner=i.owner, method=i.method, command=i.command)
