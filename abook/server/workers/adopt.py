"""The child's side of an LDAP worker: the listening sockets it inherited and adopts, its log as JSON
for the parent to relay, and the pipe whose end tells it the parent has gone."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import IO, Any, Callable

from twisted.application.service import Service
from twisted.internet import abstract, error, fdesc
from twisted.logger import Logger

from abook.logs import begin_json_logging
from abook.server.workers.balancer import accept_one_at_a_time

#: the key of the event a child logs once it serves (the parent's cue that it started well)
READY_KEY = "abook_worker_ready"

_FAMILIES = {"INET": socket.AF_INET, "INET6": socket.AF_INET6, "UNIX": socket.AF_UNIX}


@dataclass(frozen=True)
class InheritedListener:
    """A listening socket a worker inherited: its fd in the worker, address family, and LDAPS or not."""

    fd: int
    family: str  # INET, INET6 or UNIX
    tls: bool

    def encode(self) -> str:
        return f"{self.fd}:{self.family}:{'tls' if self.tls else 'plain'}"

    @classmethod
    def decode(cls, text: str) -> "InheritedListener":
        fd, family, kind = text.split(":")
        if family not in _FAMILIES or kind not in ("tls", "plain"):
            raise ValueError(f"bad listener {text!r}")
        return cls(int(fd), family, kind == "tls")


class AdoptedListener(Service):
    """Serves ``factory`` on an inherited listening socket (LDAPS: TLS over it with ``tls_context``)."""

    def __init__(self, reactor: Any, listener: InheritedListener, factory: Any, tls_context: Any) -> None:
        self._reactor = reactor
        self.listener = listener
        #: the LDAP factory (its connections, limits), as on a parent's listening service
        self.factory = factory
        self._serving = factory
        if listener.tls:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            self._serving = TLSMemoryBIOFactory(tls_context, False, factory)
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        self.port = self._reactor.adoptStreamPort(self.listener.fd, _FAMILIES[self.listener.family], self._serving)
        accept_one_at_a_time(self.port)
        os.close(self.listener.fd)  # the port holds its own duplicate

    def stopService(self) -> Any:
        super().stopService()
        port, self.port = self.port, None
        return port.stopListening() if port is not None else None


def begin_worker_logging(level: str) -> IO[str]:
    """Log as JSON on fd 1 for the parent to relay (the ready event whatever the level); fd 1 itself then
    goes to stderr (relayed as text), so nothing a library prints can break the JSON stream."""
    stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    begin_json_logging(stream, level, always=lambda event: READY_KEY in event)
    return stream


class _Lifeline(abstract.FileDescriptor):
    """Reads the pipe from the parent (which sends nothing); its end means the parent has gone."""

    def __init__(self, reactor: Any, fd: int, gone: Callable[[], None]) -> None:
        super().__init__(reactor)
        self.fd = fd
        self._gone = gone
        fdesc.setNonBlocking(fd)

    def fileno(self) -> int:
        return self.fd

    def doRead(self) -> Any:
        return fdesc.readFromFD(self.fd, lambda data: None)

    def connectionLost(self, reason: Any) -> None:
        super().connectionLost(reason)
        self._gone()


def watch_parent(reactor: Any, fd: int = 0) -> None:
    """Stop the reactor when ``fd`` (the parent's pipe) reaches its end."""
    log = Logger()

    def gone() -> None:
        try:
            reactor.stop()
        except error.ReactorNotRunning:
            return
        log.info("the abook daemon has gone; stopping")

    _Lifeline(reactor, fd, gone).startReading()
