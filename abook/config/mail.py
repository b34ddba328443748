"""Mailbox sections: ``[[mailboxes]]``, one table per polled mailbox (POP3, IMAP, EWS, Graph, forward).

The backends in ``abook/mailbox/`` read the connection options; the router reads name, role, owner,
interval and batch size. Exchange-only options sit in the ``[mailboxes.ews]`` sub-table, Exchange Online
(Microsoft Graph) ones in ``[mailboxes.graph]``.
"""

from __future__ import annotations

import re
from typing import Any, Literal, Optional

from pydantic import Field, field_validator

from abook.config.base import Port, Problem, SecretValue, Section

_BUILD = re.compile(r"^\d+(\.\d+){1,3}$")
_GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_DOMAIN = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")


class EwsOptions(Section):
    """How abook reaches one Exchange mailbox through EWS (exchangelib)."""

    #: the EWS URL, e.g. "https://mail.example.com/EWS/Exchange.asmx" (autodiscover is never used)
    service_endpoint: str
    #: SMTP address of the mailbox read (with impersonation: the user the service account acts as)
    primary_smtp_address: str
    #: "impersonation": the service account (username/password) acts as each user; "delegate": own rights
    access_type: Literal["impersonation", "delegate"] = "impersonation"
    #: HTTP authentication: "ntlm", "basic" or "digest"
    auth_type: Literal["ntlm", "basic", "digest"] = "ntlm"
    #: Exchange build, e.g. "15.1.2507.6"; empty: ask the server once when the mailbox is opened
    server_version: str = ""
    #: name of the PublicStrings extended property that marks tracked items (value 1)
    tracked_property: str = "crmLinkState"
    #: category added to tracked items, so Outlook shows them
    tracked_category: str = "Tracked to CRM"
    #: ErrorServerBusy back-offs up to this many seconds are waited out on the mail thread; longer ones
    #: end the poll with RateLimited(back_off) and the router waits instead (keep it below interval)
    max_retry_wait: float = Field(default=10.0, ge=0)
    #: HTTP connections exchangelib keeps to this server
    max_connections: int = Field(default=1, ge=1, le=64)

    @field_validator("server_version")
    @classmethod
    def _build(cls, v: str) -> str:
        if v and not _BUILD.match(v):
            raise ValueError(f'expected an Exchange build such as "15.1.2507.6", got {v!r}')
        return v

    @field_validator("service_endpoint")
    @classmethod
    def _url(cls, v: str) -> str:
        if not v.startswith(("https://", "http://")):
            raise ValueError(f'expected an http(s) URL such as "https://mail.example.com/EWS/Exchange.asmx", got {v!r}')
        return v


class GraphApp(Section):
    """The Entra ID app registration abook signs in as (client credentials, app-only) for Microsoft Graph.

    Give ``client_secret`` (or ``client_secret_file``, or ``"env:NAME"``) or ``certificate_file`` (a PEM file
    holding the private key and its certificate, or a .pfx/.p12), not both.
    """

    #: directory (tenant) id, a GUID, or the tenant's primary domain (contoso.onmicrosoft.com)
    tenant: str
    #: application (client) id of the app registration
    client_id: str
    client_secret: Optional[SecretValue] = None
    certificate_file: Optional[str] = None
    #: passphrase of an encrypted certificate_file's private key
    certificate_passphrase: Optional[SecretValue] = None
    #: sign-in host; national clouds: "https://login.microsoftonline.us", "https://login.chinacloudapi.cn"
    authority_host: str = "https://login.microsoftonline.com"
    #: Graph endpoint; national clouds: "https://graph.microsoft.us/v1.0", "https://microsoftgraph.chinacloudapi.cn/v1.0"
    graph_url: str = "https://graph.microsoft.com/v1.0"
    #: throttling (429/503) back-offs up to this many seconds are waited out on the mail thread; longer ones
    #: end the operation with RateLimited(retry_after) and the router backs the mailbox off instead
    max_retry_wait: float = Field(default=10.0, ge=0)

    @field_validator("tenant")
    @classmethod
    def _tenant(cls, v: str) -> str:
        if not (_GUID.match(v) or _DOMAIN.match(v)):
            raise ValueError(f"expected the directory (tenant) id, a GUID, or a domain such as "
                             f'"contoso.onmicrosoft.com", got {v!r}')
        return v

    @field_validator("client_id")
    @classmethod
    def _client_id(cls, v: str) -> str:
        if not _GUID.match(v):
            raise ValueError("expected the application (client) id, a GUID such as "
                             '"6a7b8c9d-1234-4000-8000-0000000ab00c" (not the secret, nor its id)')
        return v

    @field_validator("certificate_file")
    @classmethod
    def _certificate(cls, v: Optional[str]) -> Optional[str]:
        if v is None:
            return v
        try:
            data = open(v, "rb").read()
        except OSError as e:
            raise ValueError(f"cannot read {v}: {e.strerror}") from None
        if not v.lower().endswith((".pfx", ".p12")) and not (b"PRIVATE KEY-----" in data and b"CERTIFICATE-----" in data):
            raise ValueError(f"{v} must hold the private key and its certificate (PEM), or be a .pfx/.p12 file")
        return v

    @field_validator("authority_host", "graph_url")
    @classmethod
    def _https(cls, v: str) -> str:
        if not v.startswith("https://"):
            raise ValueError(f"expected an https URL, got {v!r}")
        return v.rstrip("/")

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        has_secret = data.get("client_secret") is not None or data.get("client_secret_file") is not None
        has_cert = data.get("certificate_file") is not None
        if has_secret == has_cert:
            return [(("client_secret",), "give either client_secret (or client_secret_file) or certificate_file")]
        return []


class GraphOptions(GraphApp):
    """How abook reaches one Exchange Online mailbox through Microsoft Graph."""

    #: the mailbox read: its SMTP address or user principal name
    mailbox: str

    @field_validator("mailbox")
    @classmethod
    def _mailbox(cls, v: str) -> str:
        if v and "@" not in v:  # empty: a template's, filled per user
            raise ValueError(f'expected the mailbox\'s address such as "jane@contoso.com", got {v!r}')
        return v
    #: category added to tracked messages (Outlook shows it); the extended property is set too
    tracked_category: str = "Tracked to CRM"
    #: name of the PublicStrings single-value extended property (Integer 1) on tracked messages; the same
    #: property the EWS backend sets, so a site moving from EWS to Graph keeps its marks
    tracked_property: str = "crmLinkState"
    #: a router mailbox also reads Sent Items (mail the owner sent from Outlook is tracked too)
    sent_items: bool = True


class MailboxConfig(Section):
    #: unique name; the store keys the mailbox's cursor and health by it
    name: str
    type: Literal["pop3", "imap", "ews", "graph"]
    #: "forward": this is the forward mailbox (owner worked out per message); "router": an owner's own
    role: Literal["router", "forward"] = "router"
    #: owner of a router mailbox: a CRM user name (domainname) or "queue:<email address>"
    owner: Optional[str] = None
    host: str = "127.0.0.1"
    port: Optional[Port] = None
    #: "tls" (implicit TLS), "starttls", or "none" (loopback testing only)
    security: Literal["tls", "starttls", "none"] = "tls"
    ca_file: Optional[str] = None
    username: Optional[str] = None
    password: Optional[SecretValue] = None
    #: IMAP folder / EWS folder to read
    folder: str = "INBOX"
    #: seconds between polls of this mailbox
    interval: float = Field(default=60.0, gt=0)
    #: POP3 only: delete messages after tracking (default: leave them on the server)
    delete_after_tracking: bool = False
    #: messages fetched per poll at most
    batch_size: int = Field(default=100, ge=1, le=10000)
    #: seconds a connect or a server reply may take before the poll fails as Unavailable
    timeout: float = Field(default=30.0, gt=0)
    #: seconds one mailbox operation (listing new mail, downloading one message, marking one) may take in
    #: all, however steadily the server trickles its answer; then the connection is cut (Unavailable)
    command_timeout: float = Field(default=300.0, gt=0)
    #: IMAP only: the keyword set on tracked messages
    tracked_keyword: str = "$CRMTracked"
    #: Exchange only (type = "ews"): see EwsOptions
    ews: Optional[EwsOptions] = None
    #: Exchange Online only (type = "graph"): see GraphOptions; ``ca_file`` above applies to it too
    graph: Optional[GraphOptions] = None

    @field_validator("tracked_keyword")
    @classmethod
    def _keyword(cls, v: str) -> str:
        if not v or v.startswith("\\") or any(c in v for c in ' (){%*"]\\') or not v.isascii():
            raise ValueError(f'expected an IMAP keyword atom such as "$CRMTracked", got {v!r}')
        return v

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        kind = data.get("type")
        if kind == "ews" and data.get("ews") is None:
            return [(("ews",), 'type "ews" needs a [mailboxes.ews] table with service_endpoint and '
                               "primary_smtp_address")]
        if kind != "ews" and data.get("ews") is not None:
            return [(("ews",), f'a [mailboxes.ews] table is only for type "ews", not {kind!r}')]
        if kind == "graph" and data.get("graph") is None:
            return [(("graph",), 'type "graph" needs a [mailboxes.graph] table with tenant, client_id, a '
                                 "client_secret or certificate_file, and mailbox")]
        if kind != "graph" and data.get("graph") is not None:
            return [(("graph",), f'a [mailboxes.graph] table is only for type "graph", not {kind!r}')]
        return []


def mailbox_problems(mailboxes: Any) -> list[Problem]:
    """What the router needs of the ``[[mailboxes]]`` tables (checked by the whole config: a backend reads
    a single MailboxConfig, without an owner)."""
    problems: list[Problem] = []
    seen = set()
    for n, mailbox in enumerate(mailboxes if isinstance(mailboxes, list) else []):
        if not isinstance(mailbox, dict):
            continue
        # the router tracks a router mailbox's mail for its owner: without one it can poll nothing
        if mailbox.get("role", "router") == "router" and not mailbox.get("owner"):
            problems.append((("mailboxes", n, "owner"), 'a router mailbox needs an owner: a CRM user name or '
                                                         '"queue:<email address>" (or role = "forward")'))
        # the store keys a mailbox's cursor, lease and health by its name
        name = mailbox.get("name")
        if isinstance(name, str) and name in seen:
            problems.append((("mailboxes", n, "name"), f"another [[mailboxes]] table is named {name!r}"))
        seen.add(name)
    return problems
