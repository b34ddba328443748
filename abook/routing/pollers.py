"""MailPollService: one ``MailboxPoller`` per mailbox, the configured ones (reloaded on SIGHUP) and those
derived from the users and queues whose incoming method is ``router``."""

from __future__ import annotations

from pathlib import Path

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger

from abook.config.base import Secret
from abook.config.mail import EwsOptions, GraphOptions, MailboxConfig
from abook.config.routing import UserMailboxTemplate
from abook.routing.poller import MailboxPoller, PollerDeps, settled
from abook.store import outage
from abook.store.owners import RouterOwner, router_owners_txn


class MailPollService(Service):
    """Every mailbox's poller: the configured ones, and (with a template) one per router user or queue.

    With ``[router.user_mailbox_template]`` the store is rescanned every ``rescan_interval`` seconds:
    a user or queue that switched to incoming method ``router`` gets a poller without a restart, one
    that left it loses its poller. Config mailboxes always win over derived ones for the same owner.
    """

    log = Logger()

    def __init__(self, mailboxes: list[MailboxConfig], deps: PollerDeps) -> None:
        self.setName("mail-pollers")
        self.deps = deps
        self._configured = list(mailboxes)
        self.pollers: dict[str, MailboxPoller] = {}
        self._rescan: task.LoopingCall | None = None
        self._rescanning: defer.Deferred | None = None

    def startService(self) -> None:
        super().startService()
        for mailbox in self._configured:
            self._add(mailbox)
        if self.deps.router.user_mailbox_template is not None:
            self._rescan = task.LoopingCall(self.rescan)
            self._rescan.clock = self.deps.clock
            self._rescan.start(self.deps.router.rescan_interval, now=True)

    def stopService(self) -> defer.Deferred:
        super().stopService()
        if self._rescan is not None and self._rescan.running:
            self._rescan.stop()
        waits = [p.stop() for p in self.pollers.values()]
        if self._rescanning is not None:
            waits.append(settled(self._rescanning))
        self.pollers = {}
        return defer.gatherResults(waits, consumeErrors=True).addCallback(lambda _: None)

    def reload(self, mailboxes: list[MailboxConfig]) -> defer.Deferred:
        """New ``[[mailboxes]]`` tables (SIGHUP): pollers of removed or changed mailboxes stop (after the poll
        in hand), those of added or changed ones start. Fires with what was done, for the log."""
        return defer.ensureDeferred(self._reload(list(mailboxes)))

    async def _reload(self, mailboxes: list[MailboxConfig]) -> str:
        old = {m.name: m for m in self._configured}
        new = {m.name: m for m in mailboxes}
        self._configured = mailboxes
        removed = [n for n in old if n not in new]
        changed = [n for n in old if n in new and old[n] != new[n]]
        added = [n for n in new if n not in old]
        for name in removed + changed:
            poller = self.pollers.pop(name, None)
            if poller is not None:
                await poller.stop()
        for name in changed + added:
            if self.running and name not in self.pollers:
                self._add(new[name])
        return f"mailboxes: {len(added)} added, {len(removed)} removed, {len(changed)} changed"

    def _add(self, mailbox: MailboxConfig) -> None:
        poller = MailboxPoller(mailbox, self.deps)
        self.pollers[mailbox.name] = poller
        poller.start()

    def rescan(self) -> defer.Deferred:
        d = defer.ensureDeferred(self._rescan_once())
        d.addErrback(lambda f: outage.log_failure(self.log, f, "rescanning router users failed"))
        self._rescanning = d
        return d

    async def _rescan_once(self) -> None:
        template = self.deps.router.user_mailbox_template
        assert template is not None
        owners = await self.deps.store.run(router_owners_txn)
        taken = {(m.owner or "").lower() for m in self._configured}
        wanted = [o for o in owners if o.user.lower() not in taken]
        derived = await self.deps.mail.run(derive_mailboxes_blocking, template, tuple(wanted))
        if not self.running:
            return
        names = {m.name for m in derived}
        for name in [n for n in self.pollers if n.startswith(DERIVED_PREFIX) and n not in names]:
            self.log.info("stopping poller of {mailbox}: no longer incoming method router", mailbox=name)
            await self.pollers.pop(name).stop()
        for mailbox in derived:
            if mailbox.name not in self.pollers and self.running:
                self.log.info("starting poller of {mailbox}", mailbox=mailbox.name)
                self._add(mailbox)


DERIVED_PREFIX = "auto:"


def derive_mailboxes_blocking(template: UserMailboxTemplate, owners: tuple[RouterOwner, ...]
                              ) -> tuple[MailboxConfig, ...]:
    """A MailboxConfig per router owner from the template (reads per-mailbox secret files)."""
    from abook.config import placeholders

    out = []
    for owner in owners:
        # {username}: the user name, or a queue's address (config/placeholders.py)
        username = placeholders.fill(template.username, owner.user.removeprefix("queue:"), owner.email, owner.id)
        password = template.password
        if template.password_dir:
            path = Path(template.password_dir) / username
            if path.is_file():
                password = Secret(path.read_text(encoding="utf-8").rstrip("\r\n"))
        ews = None
        if template.ews is not None:
            ews = EwsOptions.model_validate({**template.ews.model_dump(), "primary_smtp_address": owner.email})
        graph = None
        if template.graph is not None:  # field by field: model_dump would mask the secret
            graph = GraphOptions.model_validate({**{k: getattr(template.graph, k) for k in GraphOptions.model_fields},
                                                 "mailbox": owner.email})
        out.append(MailboxConfig(
            name=DERIVED_PREFIX + owner.user, type=template.type, role="router", owner=owner.user,
            host=template.host, port=template.port, security=template.security, ca_file=template.ca_file,
            username=username, password=password, folder=template.folder, interval=template.interval,
            batch_size=template.batch_size, timeout=template.timeout, command_timeout=template.command_timeout,
            ews=ews, graph=graph))
    return tuple(out)
