"""The LDAP listeners: a factory holding what every connection shares, and services from config strings.

``ldap.listen`` endpoints serve plain LDAP (StartTLS offered when a certificate is configured);
``ldap.listen_tls`` endpoints serve LDAPS with the configured certificate and key. Connections are
limited in all (``limits.max_connections``) and per client address; a connection over a limit gets a
Notice of Disconnection with busy (51) and is closed. A listener that cannot listen stops the start with
one line naming its key (``Listener``); what the config itself gets wrong is found when it is loaded.
"""

from __future__ import annotations

import errno
from collections import Counter
from pathlib import Path
from typing import Any

from ldaptor.protocols.ldap import ldaperrors
from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import IService
from twisted.internet import endpoints, protocol
from twisted.internet.error import CannotListenError
from twisted.logger import Logger

from abook.config.model import LdapConfig
from abook.errors import ConfigError
from abook.directory.api import IAuthenticator, IDirectory
from abook.monitor import metrics
from abook.server import encode
from abook.server.deadlines import Buffered
from abook.server.framing import FrameLimits
from abook.server.protocol import AbookLDAPServer


class _Refuse(protocol.Protocol):
    """Tells a client over a connection limit to go away."""

    def connectionMade(self) -> None:
        self.transport.write(encode.notice_of_disconnection(ldaperrors.LDAPBusy.resultCode, b"too many connections"))
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

    def __init__(self, config: LdapConfig, directory: IDirectory, authenticator: IAuthenticator, clock: Any,
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
        metrics.get().connection(1)
        self._notify()

    def connection_lost(self, conn: AbookLDAPServer) -> None:
        if conn in self.connections:
            self.connections.discard(conn)
            metrics.get().connection(-1)
            self.per_address[conn.peer] -= 1
            if self.per_address[conn.peer] <= 0:
                del self.per_address[conn.peer]
            self._notify()


class Listener(StreamServerEndpointService):
    """A listening service for one configured endpoint (``strports.service``'s) that, when it cannot
    listen (the port is taken, a privileged port, a socket path in a missing directory), says so in one
    line naming the config key, instead of a CannotListenError traceback."""

    def __init__(self, description: str, factory: Any, reactor: Any, key: str, shown: str, file: str) -> None:
        super().__init__(endpoints.serverFromString(reactor, description), factory)
        self._raiseSynchronously = True  # a failure to listen raises from privilegedStartService, as strports'
        self.key, self.shown, self.file = key, shown, file

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except (CannotListenError, FileNotFoundError) as e:
            raise ConfigError(f"cannot listen on {self.shown}: {_why_not(e)}", path=self.key, file=self.file) from None


def _why_not(e: CannotListenError | FileNotFoundError) -> str:
    """Why a listener could not listen, with what to do. These depend on the machine when the daemon starts
    (another process on the port, the daemon's privileges, a socket directory that systemd's
    RuntimeDirectory= creates only then), not on the file, so check-config cannot report them."""
    if isinstance(e, FileNotFoundError):  # a unix: socket's directory: Twisted's lock file beside it fails first
        return f"{e.strerror} (create the socket's directory, or choose another path)"
    reason = getattr(e.socketError, "strerror", None) or str(e.socketError)
    if getattr(e.socketError, "errno", None) == errno.EADDRINUSE:
        reason += " (another process listens there: stop it, or choose another port)"
    elif getattr(e.socketError, "errno", None) == errno.EACCES:
        reason += " (ports below 1024 need privileges: choose a higher port)"
    return reason


def _with_tls_files(endpoint: str, config: LdapConfig, config_dir: str) -> str:
    """Add the configured certificate and key to an ``ssl:`` endpoint string that names none (the config
    has both whenever it has such an endpoint: config/model.py)."""
    if not endpoint.startswith("ssl:") or "privateKey=" in endpoint:
        return endpoint
    assert config.tls_certificate and config.tls_key

    def esc(p: str) -> str:
        return str(_resolve(p, config_dir)).replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")

    return f"{endpoint}:privateKey={esc(config.tls_key)}:certKey={esc(config.tls_certificate)}"


def ldap_factories(config: LdapConfig, directory: IDirectory, authenticator: IAuthenticator, reactor: Any,
                   config_dir: str = ".") -> tuple[Any, LDAPServerFactory, LDAPServerFactory]:
    """The TLS context (or None) and the factories of plain (StartTLS) and LDAPS connections."""
    context = tls_context(config, config_dir)
    buffered = Buffered(config.limits.max_buffered_per_address, config.limits.max_buffered)
    plain = LDAPServerFactory(config, directory, authenticator, reactor, context, buffered=buffered)
    secure = LDAPServerFactory(config, directory, authenticator, reactor, context, tls_listener=True,
                               buffered=buffered)
    return context, plain, secure


def ldap_services(config: LdapConfig, directory: IDirectory, authenticator: IAuthenticator, reactor: Any,
                  config_dir: str = ".", config_file: str = "") -> list[IService]:
    """One listening service per configured endpoint."""
    _, plain, secure = ldap_factories(config, directory, authenticator, reactor, config_dir)
    file = Path(config_file).name if config_file else ""
    services: list[IService] = []
    for n, endpoint in enumerate(config.listen):
        services.append(Listener(endpoint, plain, reactor, f"ldap.listen[{n}]", endpoint, file))
    for n, endpoint in enumerate(config.listen_tls):
        services.append(Listener(_with_tls_files(endpoint, config, config_dir), secure, reactor,
                                 f"ldap.listen_tls[{n}]", endpoint, file))
    return services


def adopted_services(config: LdapConfig, directory: IDirectory, authenticator: IAuthenticator, reactor: Any,
                     inherited: list[Any], config_dir: str = ".") -> list[IService]:
    """An LDAP worker's listeners: one per listening socket inherited from the daemon."""
    from abook.server.workers.adopt import AdoptedListener

    context, plain, secure = ldap_factories(config, directory, authenticator, reactor, config_dir)
    return [AdoptedListener(reactor, li, secure if li.tls else plain, context) for li in inherited]
