"""The LDAP listeners: a factory holding what every connection shares, and services from config strings.

``ldap.listen`` endpoints serve plain LDAP (StartTLS offered when a certificate is configured);
``ldap.listen_tls`` endpoints serve LDAPS with the configured certificate and key. Connections are
limited in all (``limits.max_connections``) and per client address; a connection over a limit gets a
Notice of Disconnection with busy (51) and is closed.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from ldaptor.protocols.ldap import ldaperrors
from twisted.application import strports
from twisted.application.service import IService
from twisted.internet import protocol
from twisted.logger import Logger
from zope.interface import implementer

from abook.config.model import AbookConfig, LdapConfig
from abook.directory.api import IDirectory
from abook.directory.tree import Tree
from abook.server import encode
from abook.server.deadlines import Buffered
from abook.server.framing import FrameLimits
from abook.server.protocol import NOTICE_OF_DISCONNECTION, AbookLDAPServer


class _Refuse(protocol.Protocol):
    """Tells a client over a connection limit to go away."""

    def connectionMade(self) -> None:
        op = encode.result(0x78, ldaperrors.LDAPBusy.resultCode, b"", b"too many connections",
                           encode.octets(NOTICE_OF_DISCONNECTION, 0x8A))
        self.transport.write(encode.message(0, op))
        self.transport.loseConnection()


def tls_context(config: LdapConfig, config_dir: str = ".") -> Any:
    """Server TLS options from the configured PEM certificate (chain allowed) and key, or None."""
    if not config.tls_certificate or not config.tls_key:
        return None
    from twisted.internet import ssl

    cert_pem = _resolve(config.tls_certificate, config_dir).read_bytes()
    key_pem = _resolve(config.tls_key, config_dir).read_bytes()
    first = _first_cert(cert_pem)
    own = ssl.PrivateCertificate.loadPEM(first + b"\n" + key_pem)
    extra = [c.original for c in _more_certs(cert_pem)]
    return ssl.CertificateOptions(privateKey=own.privateKey.original, certificate=own.original,
                                  extraCertChain=extra)


def _first_cert(pem: bytes) -> bytes:
    end = b"-----END CERTIFICATE-----"
    i = pem.find(end)
    return pem[: i + len(end)] if i >= 0 else pem


def _more_certs(pem: bytes) -> list[Any]:
    from twisted.internet import ssl

    marker = b"-----BEGIN CERTIFICATE-----"
    parts = [marker + p for p in pem.split(marker)[1:]]
    return [ssl.Certificate.loadPEM(p) for p in parts[1:]]


def _resolve(path: str, config_dir: str) -> Path:
    p = Path(path)
    return p if p.is_absolute() else Path(config_dir) / p


class LDAPServerFactory(protocol.ServerFactory):
    protocol = AbookLDAPServer
    log = Logger()

    def __init__(self, config: LdapConfig, directory: IDirectory, authenticator: Any, clock: Any,
                 tls_context: Any = None, tls_listener: bool = False, buffered: Buffered | None = None) -> None:
        self.config = config
        self.directory = directory
        self.authenticator = authenticator
        self.clock = clock
        self.tls_context = tls_context
        self.tls_listener = tls_listener
        self.starttls_available = tls_context is not None and not tls_listener
        self.anonymous_books = frozenset(config.anonymous_books)
        limits = config.limits
        self.frame_limits = FrameLimits(limits.max_filter_depth, limits.max_filter_elements, limits.max_dn_length)
        #: bytes of unfinished requests, per client address and in all (shared with the process's other listener)
        self.buffered = buffered or Buffered(limits.max_buffered_per_address, limits.max_buffered)
        #: shared by every connection (Thunderbird opens one per keystroke); it encodes the entries that
        #: come as values: record entries from StoreDirectory(encode=True) arrive encoded (Entry.ber)
        self.encoder = encode.EntryEncoder(cache_size=20_000)
        self.connections: set[AbookLDAPServer] = set()
        self.per_address: Counter[str] = Counter()
        self._watchers: list[tuple[Any, Any]] = []
        #: called whenever a connection is made or lost (the workers' Balancer)
        self.on_change: list[Any] = []

    def when_connections(self, predicate: Any) -> Any:
        """A Deferred that fires once ``predicate(number of open connections)`` holds."""
        from twisted.internet import defer

        d: defer.Deferred = defer.Deferred()
        self._watchers.append((predicate, d))
        self._notify()
        return d

    def _notify(self) -> None:
        for callback in list(self.on_change):
            callback()
        for item in list(self._watchers):
            if item[0](len(self.connections)):
                self._watchers.remove(item)
                item[1].callback(len(self.connections))

    def buildProtocol(self, addr: Any) -> protocol.Protocol:
        host = getattr(addr, "host", str(addr))
        limits = self.config.limits
        if len(self.connections) >= limits.max_connections or self.per_address[host] >= limits.max_connections_per_address:
            self.log.warn("refusing a connection from {address}: connection limit reached", address=host)
            p: protocol.Protocol = _Refuse()
        else:
            p = self.protocol()
        p.factory = self
        return p

    def connection_made(self, conn: AbookLDAPServer) -> None:
        self.connections.add(conn)
        self.per_address[conn.peer] += 1
        self._notify()

    def connection_lost(self, conn: AbookLDAPServer) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            self.per_address[conn.peer] -= 1
            if self.per_address[conn.peer] <= 0:
                del self.per_address[conn.peer]
            self._notify()


def _with_tls_files(endpoint: str, config: LdapConfig, config_dir: str) -> str:
    """Add the configured certificate and key to an ``ssl:`` endpoint string that names none."""
    if not endpoint.startswith("ssl:") or "privateKey=" in endpoint:
        return endpoint
    if not config.tls_certificate or not config.tls_key:
        from abook.errors import ConfigError

        raise ConfigError("LDAPS listeners need tls_certificate and tls_key", path="ldap.listen_tls")

    def esc(p: str) -> str:
        return str(_resolve(p, config_dir)).replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")

    return f"{endpoint}:privateKey={esc(config.tls_key)}:certKey={esc(config.tls_certificate)}"


def ldap_factories(config: LdapConfig, directory: IDirectory, authenticator: Any, reactor: Any,
                   config_dir: str = ".") -> tuple[Any, LDAPServerFactory, LDAPServerFactory]:
    """The TLS context (or None) and the factories of plain (StartTLS) and LDAPS connections."""
    context = tls_context(config, config_dir)
    buffered = Buffered(config.limits.max_buffered_per_address, config.limits.max_buffered)
    plain = LDAPServerFactory(config, directory, authenticator, reactor, context, buffered=buffered)
    secure = LDAPServerFactory(config, directory, authenticator, reactor, context, tls_listener=True,
                               buffered=buffered)
    return context, plain, secure


def ldap_services(config: LdapConfig, directory: IDirectory, authenticator: Any, reactor: Any,
                  config_dir: str = ".") -> list[IService]:
    """One listening service per configured endpoint."""
    _, plain, secure = ldap_factories(config, directory, authenticator, reactor, config_dir)
    services: list[IService] = []
    for endpoint in config.listen:
        services.append(strports.service(endpoint, plain, reactor=reactor))
    for endpoint in config.listen_tls:
        services.append(strports.service(_with_tls_files(endpoint, config, config_dir), secure, reactor=reactor))
    return services


def adopted_services(config: LdapConfig, directory: IDirectory, authenticator: Any, reactor: Any,
                     inherited: list[Any], config_dir: str = ".") -> list[IService]:
    """An LDAP worker's listeners: one per listening socket inherited from the daemon."""
    from abook.server.workers import AdoptedListener

    context, plain, secure = ldap_factories(config, directory, authenticator, reactor, config_dir)
    return [AdoptedListener(reactor, li, secure if li.tls else plain, context) for li in inherited]


@implementer(IDirectory)
class UnavailableDirectory:
    """Stands in until the store-backed directory is wired: every search answers unavailable (52)."""

    def search(self, spec: Any, send_entry: Any) -> Any:
        from twisted.internet import defer

        return defer.fail(ldaperrors.LDAPUnavailable("the directory is not available"))


def store_directory(config: AbookConfig, store: Any) -> IDirectory:
    """The directory engineer's ``StoreDirectory`` over the store, once it is on main."""
    try:
        from abook.directory.search import StoreDirectory  # type: ignore[attr-defined]
    except ImportError:
        return UnavailableDirectory()
    return StoreDirectory(store, Tree(config.ldap.suffix), encode=True)


def ldap_components(config: AbookConfig, store: Any, reactor: Any, inherited: list[Any] | None = None
                    ) -> list[IService]:
    """The daemon's LDAP part: the ``auth`` thread pool (started first, stopped last), the listeners and,
    with ``ldap.workers`` > 1, the worker processes sharing them. ``inherited`` (in a worker process): the
    daemon's listening sockets to serve instead of listening on the configured endpoints."""
    from abook.directory.auth import Authenticator
    from abook.threads import ThreadPoolRunner, ThreadPoolService

    pool = ThreadPoolService("auth", 1, config.ldap.auth_threads)
    authenticator = Authenticator(store, ThreadPoolRunner(reactor, pool.pool), reactor, config.ldap)
    directory = store_directory(config, store)
    if inherited is not None:
        return [pool, *adopted_services(config.ldap, directory, authenticator, reactor, inherited, config.config_dir)]
    listeners = ldap_services(config.ldap, directory, authenticator, reactor, config.config_dir)
    if config.ldap.workers == 1:
        return [pool, *listeners]
    from abook.server.workers import Balancer, WorkerPool

    # Started after the listeners (their sockets are passed on) and stopped before them; the balancer
    # first, so the workers inherit the path of its shared file.
    balancer = Balancer(reactor, listeners, 0, config.ldap.workers)
    return [pool, *listeners, balancer, WorkerPool(config, listeners, reactor)]
