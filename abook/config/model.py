"""The config file's shape: one frozen section class per TOML table, every option with its default.

Each option here is documented, with its default, in ``config/abook.example.toml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

from pydantic import Field, field_validator, model_validator

from abook.config.base import EndpointList, Secret, SecretValue, Section
from abook.config.mail import MailboxConfig
from abook.config.routing import RouterConfig, SmtpConfig
from abook.config.transfer import ImportConfig


class StoreConfig(Section):
    #: SQLAlchemy URL; empty means SQLite at ``<data_dir>/abook.sqlite3``.
    url: str = ""
    #: Where the SQLite store and other state live.
    data_dir: str = "var"
    #: Threads running store transactions (SQLite serialises writes; more helps readers).
    threads: int = Field(default=4, ge=1, le=64)
    password: Optional[SecretValue] = None

    def resolved_url(self, config_dir: Path) -> str:
        if self.url:
            return self.url
        data_dir = Path(self.data_dir)
        if not data_dir.is_absolute():
            data_dir = config_dir / data_dir
        return f"sqlite:///{data_dir / 'abook.sqlite3'}"


class LdapLimits(Section):
    max_connections: int = Field(default=4096, ge=1)
    max_connections_per_address: int = Field(default=512, ge=1)
    idle_timeout: float = Field(default=300.0, gt=0)
    #: seconds to send the rest of a request once its first byte has arrived (server/deadlines.py)
    pdu_timeout: float = Field(default=30.0, gt=0)
    #: seconds a connection may stay without a successful bind (0: no deadline)
    bind_timeout: float = Field(default=120.0, ge=0)
    request_timeout: float = Field(default=60.0, gt=0)
    max_request_size: int = Field(default=1_048_576, ge=1024)
    max_request_size_anonymous: int = Field(default=65_536, ge=256)
    #: bytes of unfinished requests held for one client address, and for all clients
    max_buffered_per_address: int = Field(default=16_777_216, ge=1024)
    max_buffered: int = Field(default=134_217_728, ge=1024)
    max_filter_depth: int = Field(default=32, ge=1)
    max_filter_elements: int = Field(default=512, ge=1)
    max_dn_length: int = Field(default=4096, ge=64)
    max_outstanding: int = Field(default=16, ge=1)
    size_limit: int = Field(default=0, ge=0)  # 0: no server limit
    time_limit: float = Field(default=60.0, ge=0)
    max_page_size: int = Field(default=1000, ge=1)
    failed_binds_per_minute: int = Field(default=10, ge=1)


class LdapUpstream(Section):
    """Pass-through authentication: binds are checked against this directory with ldap3."""

    url: str
    #: How a CRM user maps to an upstream DN; {username}, {mail} and {id} are filled in.
    bind_dn: str = "uid={username},ou=people,dc=example,dc=com"
    timeout: float = Field(default=5.0, gt=0)
    ca_file: Optional[str] = None


class LdapConfig(Section):
    listen: EndpointList = Field(default_factory=lambda: ["tcp:10389:interface=127.0.0.1"])
    #: LDAPS listeners, e.g. "ssl:10636:interface=127.0.0.1" (certificate and key below).
    listen_tls: EndpointList = Field(default_factory=list)
    suffix: str = "o=crm"
    tls_certificate: Optional[str] = None
    tls_key: Optional[str] = None
    #: Refuse simple binds (confidentialityRequired) until StartTLS or LDAPS protects the connection.
    require_tls_for_bind: bool = False
    #: Address books anonymous clients may read, e.g. ["Queues", "Facilities"]; default none.
    anonymous_books: list[Literal["Accounts", "Contacts", "Leads", "Queues", "Users", "Facilities"]] = Field(
        default_factory=list
    )
    #: "local" checks the password hash in the store; "upstream" passes binds through.
    auth: Literal["local", "upstream"] = "local"
    upstream: Optional[LdapUpstream] = None
    #: Seconds a successful password verification is remembered (keyed hash; 0: off). See directory/auth.py.
    bind_cache_seconds: float = Field(default=60.0, ge=0)
    #: Threads verifying passwords (argon2) and running upstream binds.
    auth_threads: int = Field(default=2, ge=1, le=64)
    #: LDAP processes sharing the listening sockets (1: the daemon alone). See server/workers.py.
    workers: int = Field(default=1, ge=1, le=64)
    limits: LdapLimits = LdapLimits()

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v: str) -> str:
        if "=" not in v:
            raise ValueError(f"expected a DN such as \"o=crm\", got {v!r}")
        return v

    @property
    def serves_tls(self) -> bool:
        """Whether any connection can use TLS: an LDAPS listener, or StartTLS (a certificate and key)."""
        return bool(self.listen_tls) or bool(self.tls_certificate and self.tls_key)

    @model_validator(mode="after")
    def _workers_tls(self) -> "LdapConfig":
        # Worker processes build their TLS context from tls_certificate and tls_key; an ssl: endpoint
        # carrying its own privateKey= would serve a different certificate there.
        if self.workers > 1 and any("privateKey=" in e for e in self.listen_tls):
            raise ValueError("with workers > 1, give the LDAPS certificate as tls_certificate and tls_key, "
                             "not as privateKey= in listen_tls")
        return self


class TrackingConfig(Section):
    token_prefix: str = "CRM:"
    #: Deployment base added to each user's number, so tokens from two deployments differ.
    token_base: int = Field(default=0, ge=0)
    user_digits: int = Field(default=3, ge=1, le=9)
    counter_digits: int = Field(default=4, ge=1, le=12)
    #: Larger messages are not tracked (reason ``too_large``); they stay in their mailbox.
    max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: User name (domainname) owning the activities tracked from queue mailboxes. Empty: a System
    #: Administrator of the queue's business unit (or of the nearest unit above), else its oldest user.
    queue_owner: str = ""


class LoggingConfig(Section):
    level: Literal["debug", "info", "warn", "error"] = "info"
    #: "-" for standard output, or a file path.
    file: str = "-"


class ProcessConfig(Section):
    #: "one": every thread of the daemon runs on one CPU (each LDAP worker process on its own);
    #: "all": threads may run on any CPU the process may use.
    cpu_affinity: Literal["one", "all"] = "one"


class AbookConfig(Section):
    store: StoreConfig = StoreConfig()
    ldap: LdapConfig = LdapConfig()
    tracking: TrackingConfig = TrackingConfig()
    logging: LoggingConfig = LoggingConfig()
    process: ProcessConfig = ProcessConfig()
    mailboxes: list[MailboxConfig] = Field(default_factory=list)
    router: RouterConfig = RouterConfig()
    smtp: Optional[SmtpConfig] = None
    import_: ImportConfig = Field(default=ImportConfig(), alias="import")
    #: Directory holding the config file (set by the loader; relative paths resolve against it).
    config_dir: str = "."
    #: The config file itself, absolute (set by the loader; LDAP worker processes read it again).
    config_file: str = ""

    @property
    def store_url(self) -> str:
        return self.store.resolved_url(Path(self.config_dir))


__all__ = ["AbookConfig", "Secret"]
