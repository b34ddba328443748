"""Config ``type`` -> mailbox backend, imported lazily (exchangelib loads only if an EWS mailbox is used,
msal only if a Graph one is).

``open_source(config)`` builds the backend for one ``[[mailboxes]]`` table. Call it on the ``mail``
pool: IMAP and POP3 connect lazily on the first call, but EWS may ask the server for its version
when ``server_version`` is not configured.
"""

from __future__ import annotations

import importlib
from typing import Any

from abook.config.mail import MailboxConfig
from abook.mailbox.interfaces import IMailSource

#: config ``type`` -> "module:Class" of the IMailSource that reads it
BACKENDS: dict[str, str] = {
    "imap": "abook.mailbox.imap:ImapSource",
    "pop3": "abook.mailbox.pop3:Pop3Source",
    "ews": "abook.mailbox.ews:EwsSource",
    "graph": "abook.mailbox.graph:GraphSource",
}


def backend_class(kind: str) -> Any:
    try:
        module, name = BACKENDS[kind].split(":")
    except KeyError:
        raise ValueError(f"unknown mailbox type {kind!r}; expected one of {', '.join(sorted(BACKENDS))}") from None
    return getattr(importlib.import_module(module), name)


def open_source(config: MailboxConfig) -> IMailSource:
    """The IMailSource for one configured mailbox (blocking: call it on the mail pool)."""
    source = backend_class(config.type)(config)
    return IMailSource(source)
