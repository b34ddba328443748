"""From ``[sync]`` to what the engine needs: a policy per entity, and each user's mailbox.

``open_mailbox_blocking(template, user)`` builds a user's ``IPimStore`` (blocking: EWS may ask the server
for its version; call it on the sync pool). Backends are imported here, lazily, by type: exchangelib loads
only when ``type = "ews"``, msal only when ``type = "graph"``.
"""

from __future__ import annotations

from pathlib import Path

from abook.config.sync import SyncConfig, SyncMailboxTemplate
from abook.errors import ConfigError
from abook.mailbox.pim.interfaces import IPimStore
from abook.store.users import SyncUser
from abook.sync.model import Policy


def policies(config: SyncConfig) -> dict[str, Policy]:
    return {e: Policy(e, directions=dict(getattr(config.directions, e)), conflict=getattr(config.conflict, e),
                      delete_open_tasks=config.delete_open_tasks, tracked_category=config.tracked_category,
                      mass_delete_guard=config.mass_delete_guard, mass_delete_min_links=config.mass_delete_min_links)
            for e in ("contact", "appointment", "task")}


def _password(template: SyncMailboxTemplate, username: str) -> str:
    if template.password_dir:
        path = Path(template.password_dir) / username
        if path.exists():
            return path.read_text(encoding="utf-8").rstrip("\r\n")
    if template.password is None:
        raise ConfigError(f"no password for {username}: give sync.mailbox.password or a file in password_dir",
                          path="sync.mailbox")
    return template.password.reveal()


def open_mailbox_blocking(template: SyncMailboxTemplate, user: SyncUser) -> IPimStore:
    fill = {"user": user.name, "email": user.email or user.name}
    username = template.username.format(**fill)
    if template.type == "dav":
        from abook.mailbox.pim.dav import DavMailbox

        urls = {e: u.format(**fill) for e, u in (("contact", template.contacts_url), ("appointment", template.calendar_url),
                                                  ("task", template.tasks_url)) if u}
        return DavMailbox(urls, username, _password(template, username), timeout=template.timeout,
                          ca_file=template.ca_file, horizon_days=template.recurrence_horizon_days,
                          lookback_days=template.recurrence_lookback_days)
    if template.type == "graph":
        from abook.mailbox.pim.graph import GraphPimStore

        assert template.graph is not None
        if not user.email:
            raise ConfigError(f"user {user.name} has no email address, so no Exchange mailbox", path="sync.mailbox.graph")
        from abook.mailbox.pim.graph_events import Window

        window = Window(template.calendar_days_back, template.calendar_days_ahead, template.calendar_window_step_days)
        return GraphPimStore(template.graph, user.email, ca_file=template.ca_file, timeout=template.timeout,
                             window=window)
    from abook.mailbox.pim.ews import EwsPimStore

    assert template.ews is not None
    if not user.email:
        raise ConfigError(f"user {user.name} has no email address, so no Exchange mailbox", path="sync.mailbox.ews")
    return EwsPimStore(template.ews, user.email, username, _password(template, username), timeout=template.timeout,
                       ca_file=template.ca_file, horizon_days=template.recurrence_horizon_days,
                       lookback_days=template.recurrence_lookback_days)
