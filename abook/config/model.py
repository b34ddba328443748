"""The config file's shape: one frozen section class per TOML table, every option with its default.

Each option here is documented, with its default, in ``config/abook.example.toml``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import Field, ValidationInfo, field_validator

from abook.config import placeholders, tls
from abook.config.base import Problem, Secret, SecretValue, Section, strings
from abook.config.endpoints import HttpEndpoint, PlainEndpoints, TlsEndpoints
from abook.config.mail import MailboxConfig, mailbox_problems
from abook.config.routing import RouterConfig, SmtpConfig
from abook.config.sync import SyncConfig
from abook.config.transfer import ImportConfig


class StoreConfig(Section):
    #: SQLAlchemy URL; empty means SQLite at ``<data_dir>/abook.sqlite3``.
    url: str = ""
    #: Where the SQLite store and other state live.
    data_dir: str = "var"
    #: Threads running store transactions (SQLite serialises writes; more helps readers).
    threads: int = Field(default=4, ge=1, le=64)
    #: Seconds the daemon waits on the database at most (connect, statement, a free connection, SQLite's
    #: busy wait); an LDAP bind or search the store has not answered by then gets unavailable (52).
    timeout_seconds: float = Field(default=5.0, ge=0.5, le=300)
    password: Optional[SecretValue] = None
    #: PostgreSQL hot standbys of ``url`` that LDAP searches and binds' lookups read (store/replicas.py);
    #: writes, the router and sync always use ``url``. Empty: every read goes to ``url``.
    read_urls: list[str] = Field(default_factory=list)

    @field_validator("read_urls")
    @classmethod
    def _standbys(cls, v: list[str]) -> list[str]:
        for url in v:
            why = url_problem(url)
            if why is None and not url.startswith("postgresql"):
                why = "a read replica is a PostgreSQL hot standby (\"postgresql+psycopg://user@host/database\")"
            if why:
                raise ValueError(why)
        if len(set(v)) != len(v):
            raise ValueError("a read replica is listed twice")
        return v

    @field_validator("url")
    @classmethod
    def _dialect(cls, v: str) -> str:
        """abook runs on SQLite and on PostgreSQL through psycopg (3): anything else fails at ``abook init``."""
        if v:
            why = url_problem(v)
            if why:
                raise ValueError(why)
        return v

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        url = data.get("url") or ""
        if data.get("read_urls") and isinstance(url, str) and not url.startswith("postgresql"):
            return [(("read_urls",), "read replicas need a PostgreSQL store: set store.url to the primary")]
        data_dir = data.get("data_dir", "var")
        if data.get("url") or not isinstance(data_dir, str):
            return []
        # the SQLite store is made there: a directory, or nothing yet
        where = tls.resolve(data_dir, context.get("config_dir", "."))
        if where.exists() and not where.is_dir():
            return [(("data_dir",), f"{data_dir} is a file, not a directory")]
        return []

    def resolved_url(self, config_dir: Path) -> str:
        if self.url:
            return self.url
        data_dir = Path(self.data_dir)
        if not data_dir.is_absolute():
            data_dir = config_dir / data_dir
        return f"sqlite:///{data_dir / 'abook.sqlite3'}"


#: the databases abook runs on, as SQLAlchemy names them: backend -> the drivers it works with
DIALECTS = {"sqlite": ("", "pysqlite"), "postgresql": ("", "psycopg")}


def url_problem(url: str) -> str | None:
    """Why abook cannot store its data at ``url`` (a SQLAlchemy URL), or None. Never repeats a password."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    supported = ('abook runs on SQLite (leave url empty for <data_dir>/abook.sqlite3, or "sqlite:///path") and '
                 'PostgreSQL ("postgresql+psycopg://user@host/database")')
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return f"expected a database URL: {supported}"
    backend, _, driver = parsed.drivername.partition("+")
    if backend not in DIALECTS:
        return f"{supported}, not {backend}"
    if driver not in DIALECTS[backend]:
        return f"{supported}; the {backend} driver {driver!r} is not installed"
    return None


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
    #: failed binds (and binds in progress) per client address per minute; see directory/bindlimit.py
    failed_binds_per_minute: int = Field(default=10, ge=1)
    #: failed binds (and binds in progress) per bind name, from all addresses together, per minute
    failed_binds_per_name_per_minute: int = Field(default=20, ge=1)
    #: failed binds in a row that lock a bind name for lockout_seconds (ppolicy's pwdMaxFailure); 0: off
    lockout_failures: int = Field(default=0, ge=0)
    lockout_seconds: float = Field(default=300.0, gt=0)
    #: CPU seconds of database work one batch of a search may use (adminLimitExceeded past it); 0: none
    search_cost_seconds: float = Field(default=0.5, ge=0)
    #: database calls of one user's (anonymous: one address's) searches running at once
    searches_per_user: int = Field(default=2, ge=1)
    #: database calls of one connection's searches running at once
    searches_per_connection: int = Field(default=1, ge=1)


class LdapUpstream(Section):
    """Pass-through authentication: binds are checked against this directory with ldap3."""

    url: str
    #: How a CRM user maps to an upstream DN: {username}, {mail} and {id} are filled in (config/placeholders.py).
    bind_dn: str = "uid={username},ou=people,dc=example,dc=com"
    timeout: float = Field(default=5.0, gt=0)
    ca_file: Optional[str] = None

    _bind_dn = field_validator("bind_dn")(placeholders.validator)


class LdapConfig(Section):
    #: Plain LDAP listeners (StartTLS offered when a certificate is set); see config/endpoints.py.
    listen: PlainEndpoints = Field(default_factory=lambda: ["tcp:10389:interface=127.0.0.1"])
    #: LDAPS listeners, e.g. "ssl:10636:interface=127.0.0.1" (certificate and key below).
    listen_tls: TlsEndpoints = Field(default_factory=list)
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
    #: LDAP processes sharing the listening sockets (1: the daemon alone). See server/workers/.
    workers: int = Field(default=1, ge=1, le=64)
    limits: LdapLimits = LdapLimits()

    @field_validator("suffix")
    @classmethod
    def _suffix(cls, v: str) -> str:
        if "=" not in v:
            raise ValueError(f"expected a DN such as \"o=crm\", got {v!r}")
        return v

    @field_validator("tls_certificate", "tls_key")
    @classmethod
    def _tls_file(cls, v: Optional[str], info: ValidationInfo) -> Optional[str]:
        """Each file exists and is readable; with the key (checked after the certificate, when that was
        fine), the pair holds a certificate and an unencrypted key that belong together. See config/tls.py."""
        if v is None:
            return v
        config_dir = (info.context or {}).get("config_dir", ".")
        problem = tls.read_problem(v, config_dir)
        certificate = info.data.get("tls_certificate")
        if problem is None and info.field_name == "tls_key" and certificate:
            problem = tls.pair_problem(certificate, v, config_dir)
        if problem is not None:
            raise ValueError(problem)
        return v

    @property
    def serves_tls(self) -> bool:
        """Whether any connection can use TLS: an LDAPS listener, or StartTLS (a certificate and key)."""
        return bool(self.listen_tls) or bool(self.tls_certificate and self.tls_key)

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        problems: list[Problem] = []
        certificate, key, listen_tls = data.get("tls_certificate"), data.get("tls_key"), strings(data.get("listen_tls"))
        if bool(certificate) != bool(key):
            problems.append((("tls_key" if certificate else "tls_certificate",),
                             "give both tls_certificate and tls_key, or neither"))
        elif not certificate and any("privateKey=" not in e for e in listen_tls):
            problems.append((("listen_tls",), "LDAPS listeners need tls_certificate and tls_key"))
        # Worker processes build their TLS context from tls_certificate and tls_key; an ssl: endpoint
        # carrying its own privateKey= would serve a different certificate there.
        workers = data.get("workers", 1)
        if isinstance(workers, int) and workers > 1 and any("privateKey=" in e for e in listen_tls):
            problems.append((("listen_tls",), "with workers > 1, give the LDAPS certificate as tls_certificate "
                                              "and tls_key, not as privateKey= in listen_tls"))
        # Without the table the daemon has no directory to pass binds to; it never falls back to the
        # local password hashes (directory/auth.py), which the admin chose not to trust.
        if data.get("auth") == "upstream" and data.get("upstream") is None:
            problems.append((("upstream",), 'auth = "upstream" needs an [ldap.upstream] table with the url of '
                                            "the directory that checks the passwords"))
        return problems


class TrackingConfig(Section):
    token_prefix: str = "CRM:"
    #: Deployment base added to each user's number, so tokens from two deployments differ.
    token_base: int = Field(default=0, ge=0)
    user_digits: int = Field(default=3, ge=1, le=9)
    counter_digits: int = Field(default=4, ge=1, le=12)
    #: Larger messages are not tracked (reason ``too_large``); they stay in their mailbox.
    max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    #: User name (domainname) owning the activities tracked from queue mailboxes; an active user (checked
    #: against the store by check-config and at start, ``store/owners.py``). Empty: a System Administrator
    #: of the queue's business unit or of the nearest unit above that has one, else its oldest user.
    queue_owner: str = ""


class LoggingConfig(Section):
    level: Literal["debug", "info", "warn", "error"] = "info"
    #: "-" for standard output, or a file path.
    file: str = "-"


class ProcessConfig(Section):
    #: "one": every thread of the daemon runs on one CPU (each LDAP worker process on its own);
    #: "all": threads may run on any CPU the process may use.
    cpu_affinity: Literal["one", "all"] = "one"


class MetricsConfig(Section):
    """``/metrics`` (Prometheus text format) and ``/healthz`` over HTTP; see abook/monitor/."""

    #: Twisted endpoint string of the HTTP listener, e.g. "tcp:9464:interface=127.0.0.1"; "" (default): off
    listen: HttpEndpoint = ""
    #: /healthz answers 503 when no mailbox poll has completed for this many (shortest) poll intervals
    stuck_after_intervals: int = Field(default=3, ge=1)
    #: seconds /healthz waits for the store to answer before it calls it unreachable
    store_timeout: float = Field(default=5.0, gt=0)


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
    sync: SyncConfig = SyncConfig()
    metrics: MetricsConfig = MetricsConfig()
    #: Directory holding the config file (set by the loader; relative paths resolve against it).
    config_dir: str = "."
    #: The config file itself, absolute (set by the loader; LDAP worker processes read it again).
    config_file: str = ""

    @classmethod
    def problems_together(cls, data: dict[str, Any], context: dict[str, Any]) -> list[Problem]:
        problems = mailbox_problems(data.get("mailboxes"))
        # LDAP worker processes read the config file again (server/workers/pool.py): a config built
        # without one (parse_config from a program) cannot have them
        ldap = data.get("ldap")
        workers = ldap.get("workers", 1) if isinstance(ldap, dict) else getattr(ldap, "workers", 1)
        if isinstance(workers, int) and workers > 1 and not data.get("config_file"):
            problems.append((("ldap", "workers"), "LDAP workers read the config file: load the config from a file"))
        return problems

    @property
    def store_url(self) -> str:
        return self.store.resolved_url(Path(self.config_dir))

    @property
    def data_dir(self) -> Path:
        """``store.data_dir``, resolved against the config file's directory."""
        return tls.resolve(self.store.data_dir, self.config_dir)


__all__ = ["AbookConfig", "Secret"]
