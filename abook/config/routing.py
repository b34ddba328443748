"""Router sections: ``[smtp]`` (outgoing server), ``[router]`` (polling, health, loop damping) and
``[router.user_mailbox_template]`` (mailboxes derived from users and queues whose incoming method is router).
"""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from abook.config import placeholders
from abook.config.base import Port, Problem, SecretValue, Section
from abook.config.mail import EwsOptions, GraphApp, GraphOptions


class SmtpConfig(Section):
    #: "smtp": the server below; "graph": Microsoft Graph sendMail as the sender's own Exchange Online
    #: mailbox (the app registration in [smtp.graph]; host, port, security and credentials are not used)
    transport: Literal["smtp", "graph"] = "smtp"
    #: the app registration (tenant, client_id, credential) for transport = "graph"; ca_file applies to it
    graph: Optional[GraphApp] = None
    host: str = "127.0.0.1"
    #: default: 465 for "tls", 587 for "starttls", 25 for "none"
    port: Optional[Port] = None
    #: "tls" (implicit TLS), "starttls", or "none" (loopback testing only)
    security: Literal["tls", "starttls", "none"] = "starttls"
    #: CA bundle to verify the server's certificate (default: the system's)
    ca_file: Optional[str] = None
    username: Optional[str] = None
    password: Optional[SecretValue] = None
    #: seconds for connecting and for each SMTP reply
    timeout: float = Field(default=30.0, gt=0)
    #: delivery attempts for a transient failure (4xx, connection) before the email is failed (8)
    max_attempts: int = Field(default=5, ge=1, le=100)
    #: seconds before the first retry; doubled after each further failure, capped at retry_backoff_max
    retry_backoff: float = Field(default=60.0, ge=0)
    retry_backoff_max: float = Field(default=3600.0, ge=0)
    #: name sent in EHLO (default: the local host name)
    helo_name: Optional[str] = None

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        transport = data.get("transport", "smtp")
        if transport == "graph" and data.get("graph") is None:
            return [(("graph",), 'transport "graph" needs an [smtp.graph] table with tenant, client_id and a '
                                 "client_secret or certificate_file")]
        if transport != "graph" and data.get("graph") is not None:
            return [(("graph",), 'an [smtp.graph] table is only read with transport = "graph"')]
        return []


class EwsTemplate(EwsOptions):
    """``[mailboxes.ews]`` for derived Exchange mailboxes: the address read is each user's own."""

    #: unused here: each derived mailbox reads its owner's address
    primary_smtp_address: str = ""


class GraphTemplate(GraphOptions):
    """``[mailboxes.graph]`` for derived Exchange Online mailboxes: the mailbox read is each user's own."""

    #: unused here: each derived mailbox reads its owner's address
    mailbox: str = ""


class UserMailboxTemplate(Section):
    """How to reach the mailbox of a user or queue whose incoming method is ``router``.

    ``username`` may use ``{username}`` (the user name; a queue's address), ``{mail}`` (the user's
    internalemailaddress, the queue's address) and ``{id}`` (their GUID), as ``ldap.upstream.bind_dn`` does
    (config/placeholders.py; ``{user}`` and ``{email}`` still work). The password is read from
    ``password_dir/<username>`` when that file exists (a per-mailbox secret), else ``password`` is used
    (one service account, e.g. EWS impersonation or a Dovecot master user). An Exchange template
    (``type = "ews"``) needs ``[router.user_mailbox_template.ews]``, an Exchange Online one (``type = "graph"``)
    ``[router.user_mailbox_template.graph]`` (one app registration reads every user's mailbox).
    """

    type: Literal["pop3", "imap", "ews", "graph"] = "imap"
    host: str = "127.0.0.1"
    port: Optional[Port] = None
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Optional[str] = None
    username: str = "{mail}"
    password: Optional[SecretValue] = None
    password_dir: Optional[str] = None
    folder: str = "INBOX"
    interval: float = Field(default=60.0, gt=0)
    batch_size: int = Field(default=100, ge=1, le=10000)
    timeout: float = Field(default=30.0, gt=0)
    command_timeout: float = Field(default=300.0, gt=0)
    ews: Optional[EwsTemplate] = None
    graph: Optional[GraphTemplate] = None

    _username = field_validator("username")(placeholders.validator)

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        if data.get("type") == "ews" and data.get("ews") is None:
            return [(("ews",), 'type "ews" needs a [router.user_mailbox_template.ews] table with service_endpoint')]
        if data.get("type") == "graph" and data.get("graph") is None:
            return [(("graph",), 'type "graph" needs a [router.user_mailbox_template.graph] table with tenant, '
                                 "client_id and a client_secret or certificate_file")]
        return []


class RouterConfig(Section):
    #: run the router (mailbox pollers and the outgoing queue) in the daemon
    enabled: bool = True
    #: seconds between rescans of the store for users and queues with incoming method router
    rescan_interval: float = Field(default=60.0, gt=0)
    #: consecutive permanent failures (bad password, missing mailbox) before a mailbox is disabled
    disable_after_failures: int = Field(default=3, ge=1)
    #: cap, in seconds, of the exponential back-off after transient errors
    max_backoff: float = Field(default=900.0, gt=0)
    #: polls of one mailbox that fail in a row (of any kind) before an ALERT is logged and `abook status`
    #: shows the mailbox as failing; it is backed off meanwhile (a reset cursor too, from the second)
    alert_after_failures: int = Field(default=5, ge=1)
    #: mailboxes polled at once (threads of the ``mail`` pool)
    mail_threads: int = Field(default=4, ge=1, le=256)
    #: this daemon's name in mailbox leases; empty: "<host name>:<config directory>", so a restarted
    #: daemon takes its own leases back at once. Two daemons on one host sharing a store need two names.
    daemon_id: str = ""
    #: seconds a daemon holds a mailbox's lease (renewed per batch); others skip it meanwhile
    lease_seconds: float = Field(default=300.0, gt=0)
    #: loop damping: more than loop_max_messages from one sender to one mailbox within
    #: loop_window_minutes are held (recorded as untracked "loop"), not tracked
    loop_max_messages: int = Field(default=20, ge=1)
    loop_window_minutes: float = Field(default=10.0, gt=0)
    #: forward mailbox: remove a wrapper once its inner messages are handled (false: mark it tracked)
    forward_remove_wrappers: bool = True
    #: seconds between scans of the outgoing queue (Pending Send email)
    outgoing_interval: float = Field(default=30.0, gt=0)
    #: emails claimed per outgoing scan at most
    outgoing_batch: int = Field(default=50, ge=1)
    user_mailbox_template: Optional[UserMailboxTemplate] = None
