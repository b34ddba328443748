"""LDAP worker processes: ``ldap.workers = N`` serves LDAP from N processes sharing the listening sockets.

One Python process serves LDAP on about one core (the GIL). With ``workers = N > 1`` the daemon runs as
with one (store, router and LDAP listeners in the parent) and, once its LDAP ports listen, starts N - 1
LDAP-only children (``python -m abook ldap-worker``, Twisted's "one or more processes" pattern). Each child
inherits the listening sockets through ``childFDs`` and adopts them (``reactor.adoptStreamPort``); the
kernel hands each accepted connection to exactly one process. A child builds its own store (own db
threads), Authenticator (own auth threads) and directory from the same config file, with the same code
as the parent (``ldap_components``), and serves nothing but LDAP.

Per process, therefore: the connection limits, the per-address limits and the failed-bind rate limit;
the encoded-entry and bind caches.

Lifecycle. A child's stdin is a pipe from the parent that carries nothing: when it closes (the parent
exited, however it died) the child stops, as it does on SIGTERM. ``WorkerPool.stopService`` sends SIGTERM
to every child and waits for it (``grace`` seconds, then SIGKILL). A child that exits while the daemon
runs is logged and restarted after a back-off that doubles with every child that dies before it served or
within ``STABLE_SECONDS`` of its start (0.5 s, 1 s, 2 s ... up to 30 s), so one that cannot start does not spin.

Logs. A child writes its twisted.logger events as JSON text sequences on fd 1; the parent re-publishes
them into its own log (so ``abook serve``'s and twistd's log options cover the children too), marked
``worker N``. Anything else a child prints (fd 2, e.g. a traceback before logging starts) is relayed
line by line as warnings. Secrets are never on a child's command line: it gets the config file's path.
"""

from __future__ import annotations

import contextlib
import mmap
import os
import socket
import struct
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import IO, Any, Callable

from twisted.application.service import Service
from twisted.internet import abstract, defer, error, fdesc, protocol
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.task import LoopingCall
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevelFilterPredicate,
    PredicateResult,
    eventFromJSON,
    globalLogBeginner,
    globalLogPublisher,
    jsonFileLogObserver,
)

from abook.config.model import AbookConfig
from abook.errors import ConfigError

#: a child that ran this long before it died is restarted at the base delay again
STABLE_SECONDS = 10.0
BASE_DELAY = 0.5
MAX_DELAY = 30.0
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


def accept_one_at_a_time(port: Any) -> None:
    """Make ``port`` accept one connection per wake-up.

    Every process sharing a listening socket is woken for each new connection, and Twisted's Port
    accepts up to 100 (adapting) per wake-up, so the first process awake took a whole burst: all 8
    connections a client opened at once went to one process, and the other stayed idle for as long as
    they lasted. Accepting one at a time lets the others, woken too, take the next ones, and a busy
    process, slower back to its poll, takes fewer.
    """
    read = port.doRead

    def doRead() -> Any:
        port.numberAccepts = 1  # Port.doRead raises it again after a full round
        return read()

    port.doRead = doRead


class Balancer(Service):
    """Keeps the LDAP processes' connection counts level, so each process (and its CPU) gets its share.

    The kernel gives a new connection on a shared listening socket to whichever process accepts first,
    and the same process kept winning: all 8 connections of a load test went to one while the other
    idled. So every process publishes its connection count (and a heartbeat) in a small shared file, one
    slot per process, and a process that holds more connections than the least loaded live one stops
    accepting until that is no longer so. It looks on every connection it gains or loses and every
    ``interval`` seconds; a slot whose heartbeat is older than ``stale`` seconds (a process that died or
    hangs) does not count, so no process waits on one that cannot accept.
    """

    SLOT = struct.Struct("=qd")  # connections, heartbeat (time.monotonic(), the same clock in all)
    ENV = "ABOOK_LDAP_BALANCE"

    def __init__(self, reactor: Any, listeners: list[Any], index: int, slots: int, path: str | None = None,
                 interval: float = 0.05, stale: float = 1.0) -> None:
        self._reactor = reactor
        #: services with ``.factory`` (LDAPServerFactory) whose ports this process accepts on
        self.listeners = listeners
        self.index, self.slots, self.interval, self.stale = index, slots, interval, stale
        self.path = path
        self._owner = path is None  # the daemon creates the file (and removes it), its workers open it
        self._map: Any = None
        self._ports: list[Any] = []
        self._loop: Any = None
        self.accepting = True

    def startService(self) -> None:
        super().startService()
        if self._owner:
            fd, self.path = tempfile.mkstemp(prefix="abook-ldap-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
            os.ftruncate(fd, self.SLOT.size * self.slots)
            os.environ[self.ENV] = self.path  # the workers, started after this, inherit it
        else:
            fd = os.open(self.path, os.O_RDWR)  # type: ignore[arg-type]
        try:
            self._map = mmap.mmap(fd, self.SLOT.size * self.slots)
        finally:
            os.close(fd)
        for service in self.listeners:
            service.factory.on_change.append(self.check)
            if getattr(service, "port", None) is not None:  # a worker's AdoptedListener
                self._ports.append(service.port)
            elif hasattr(service, "_waitingForPort"):  # the daemon's strports listener
                listening_port(service).addCallback(self._got_port)
        self._loop = LoopingCall(self.check)
        self._loop.clock = self._reactor
        self._loop.start(self.interval, now=True)

    def _got_port(self, port: Any) -> None:
        if port is not None:
            self._ports.append(port)
            if not self.accepting:
                port.stopReading()

    def check(self) -> None:
        if self._map is None:
            return
        now = time.monotonic()
        mine = sum(len(s.factory.connections) for s in self.listeners)
        self.SLOT.pack_into(self._map, self.SLOT.size * self.index, mine, now)
        least = mine
        for i in range(self.slots):
            if i != self.index:
                count, beat = self.SLOT.unpack_from(self._map, self.SLOT.size * i)
                if now - beat <= self.stale:
                    least = min(least, count)
        accept = mine <= least
        if accept != self.accepting:
            self.accepting = accept
            for port in self._ports:
                port.startReading() if accept else port.stopReading()

    def stopService(self) -> Any:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        for service in self.listeners:
            if self.check in service.factory.on_change:
                service.factory.on_change.remove(self.check)
        if self._map is not None:
            self.SLOT.pack_into(self._map, self.SLOT.size * self.index, 0, 0.0)  # no longer live
            self._map.close()
            self._map = None
        if self._owner and self.path:
            with contextlib.suppress(OSError):
                os.unlink(self.path)
        return None


# -- the parent ------------------------------------------------------------------------------------


def listening_port(service: Any) -> defer.Deferred:
    """The IListeningPort of a started ``strports`` service (None if it failed to listen)."""
    d: defer.Deferred = defer.Deferred()

    def got(port: Any) -> Any:
        d.callback(port)
        return port

    service._waitingForPort.addCallback(got)
    return d


def _family(port: Any) -> str:
    host = port.getHost()
    if isinstance(host, IPv6Address):
        return "INET6"
    if isinstance(host, IPv4Address):
        return "INET"
    if isinstance(host, UNIXAddress):
        return "UNIX"
    raise ConfigError(f"cannot share a listener on {host!r} with LDAP workers", path="ldap.workers")


class WorkerPool(Service):
    """Starts ``ldap.workers - 1`` LDAP child processes on the parent's listening sockets, keeps them up."""

    log = Logger()

    def __init__(self, config: AbookConfig, listeners: list[Any], reactor: Any, grace: float = 10.0) -> None:
        if not config.config_file:
            raise ConfigError("LDAP workers read the config file: load the config from a file",
                              path="ldap.workers")
        self.setName("ldap-workers")
        self.config = config
        self.listeners = listeners
        self._reactor = reactor
        self.grace = grace
        self.workers: dict[int, _Worker] = {}
        self._inherited: list[tuple[int, InheritedListener]] = []
        self._restarts: dict[int, Any] = {}
        self._failures: dict[int, int] = {}

    @property
    def count(self) -> int:
        return self.config.ldap.workers - 1

    def startService(self) -> None:
        super().startService()
        d = defer.gatherResults([listening_port(s) for s in self.listeners], consumeErrors=True)
        d.addCallback(self._listening)
        d.addErrback(lambda f: self.log.failure("LDAP workers not started", f))

    def _listening(self, ports: list[Any]) -> None:
        if not self.running:
            return
        self._inherited = []
        for n, (service, port) in enumerate(zip(self.listeners, ports)):
            if port is None:  # the listener failed (and said so); the daemon serves the others
                continue
            tls = bool(getattr(service.factory, "tls_listener", False))
            accept_one_at_a_time(port)
            self._inherited.append((port.fileno(), InheritedListener(3 + n, _family(port), tls)))
        if not self._inherited:
            return
        for index in range(1, self.count + 1):
            self._spawn(index)

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        if not self.running:
            return
        args = [sys.executable, "-m", "abook", "ldap-worker", "-c", self.config.config_file, "--index", str(index)]
        child_fds: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for parent_fd, inherited in self._inherited:
            child_fds[inherited.fd] = parent_fd
            args += ["--listener", inherited.encode()]
        worker = _Worker(self, index)
        try:
            self._reactor.spawnProcess(worker, sys.executable, args, env=dict(os.environ), childFDs=child_fds)
        except OSError as e:
            self.log.error("could not start LDAP worker {index}: {error}", index=index, error=str(e))
            self._schedule_restart(index, ran=0.0)
            return
        self.workers[index] = worker
        self.log.info("started LDAP worker {index} (pid {pid})", index=index, pid=worker.pid)

    def _ended(self, worker: "_Worker", reason: Any) -> None:
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        from abook.monitor.metrics import process_ended

        process_ended(worker.pid or 0)  # its open connections are closed: no longer counted
        status = _status(reason.value)
        if not self.running:
            self.log.info("LDAP worker {index} (pid {pid}) stopped ({status})", index=worker.index,
                          pid=worker.pid, status=status)
            return
        ran = self._reactor.seconds() - worker.started
        # a child that never served failed to start, however long that took (a loaded machine can take
        # longer than STABLE_SECONDS to import and fail): its back-off keeps growing
        delay = self._schedule_restart(worker.index, ran if worker.ready else 0.0)
        self.log.error("LDAP worker {index} (pid {pid}) exited unexpectedly ({status}) after {ran:.1f} s; "
                       "restarting it in {delay:.1f} s", index=worker.index, pid=worker.pid, status=status,
                       ran=ran, delay=delay)

    def _schedule_restart(self, index: int, ran: float) -> float:
        if ran >= STABLE_SECONDS:
            self._failures[index] = 0
        failures = self._failures.get(index, 0)
        delay = min(MAX_DELAY, BASE_DELAY * 2 ** failures)
        self._failures[index] = failures + 1
        self._restarts[index] = self._reactor.callLater(delay, self._spawn, index)
        return delay

    def stopService(self) -> Any:
        super().stopService()
        for call in self._restarts.values():
            if call.active():
                call.cancel()
        self._restarts.clear()
        live = list(self.workers.values())
        if not live:
            return None
        for w in live:
            w.signal("TERM")
        done = defer.DeferredList([w.ended() for w in live])
        out: defer.Deferred = defer.Deferred()
        done.addCallback(lambda _: out.called or out.callback(None))

        def kill() -> None:
            for w in list(self.workers.values()):
                self.log.warn("LDAP worker {index} (pid {pid}) did not stop within {grace} s; killing it",
                              index=w.index, pid=w.pid, grace=self.grace)
                w.signal("KILL")
            give_up.append(self._reactor.callLater(5.0, lambda: out.called or out.callback(None)))

        give_up: list[Any] = []
        killer = self._reactor.callLater(self.grace, kill)

        def cancel_timers(result: Any) -> Any:
            for call in [killer, *give_up]:
                if call.active():
                    call.cancel()
            return result

        return out.addBoth(cancel_timers)


def _status(value: Any) -> str:
    if isinstance(value, error.ProcessDone):
        return "exit status 0"
    sig = getattr(value, "signal", None)
    if sig:
        return f"signal {sig}"
    return f"exit status {getattr(value, 'exitCode', '?')}"


class _Worker(protocol.ProcessProtocol):
    """One child: relays its log, tells the pool when it ends."""

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.pid: int | None = None
        self.started = pool._reactor.seconds()
        self.ready = False
        self._out = _LineBuffer(self._json_line)
        self._err = _LineBuffer(self._text_line)
        self._waiting: list[defer.Deferred] = []
        self._done = False

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def signal(self, name: str) -> None:
        try:
            self.transport.signalProcess(name)
        except error.ProcessExitedAlready:
            pass

    def ended(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if self._done:
            d.callback(None)
        else:
            self._waiting.append(d)
        return d

    def outReceived(self, data: bytes) -> None:
        self._out.feed(data)

    def errReceived(self, data: bytes) -> None:
        self._err.feed(data)

    def processEnded(self, reason: Any) -> None:
        self._out.flush()
        self._err.flush()
        self._done = True
        self.pool._ended(self, reason)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)

    def _json_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").lstrip("\x1e").strip()
        if not text:
            return
        try:
            event = eventFromJSON(text)
        except ValueError:
            self._text_line(line)
            return
        if not isinstance(event, dict):
            self._text_line(line)
            return
        if event.pop(READY_KEY, None):
            self.ready = True
        level_name = getattr(event.get("log_level"), "name", "info")
        event["log_system"] = f"worker {self.index} {event.get('log_namespace', '-')}#{level_name}"
        globalLogPublisher(event)

    def _text_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "replace").rstrip()
        if text:
            self.pool.log.warn("LDAP worker {index}: {line}", index=self.index, line=text)


class _LineBuffer:
    """Splits a byte stream into lines (bounded: an endless line is cut at 1 MB)."""

    def __init__(self, on_line: Callable[[bytes], None], limit: int = 1 << 20) -> None:
        self._on_line = on_line
        self._limit = limit
        self._buf = b""

    def feed(self, data: bytes) -> None:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        for line in lines:
            self._on_line(line)
        if len(self._buf) > self._limit:
            self.flush()

    def flush(self) -> None:
        if self._buf:
            line, self._buf = self._buf, b""
            self._on_line(line)


# -- the child -------------------------------------------------------------------------------------


class _ReadyFirst:
    """Lets the ready event through whatever the log level."""

    def __call__(self, event: dict[str, Any]) -> Any:
        return PredicateResult.yes if READY_KEY in event else PredicateResult.maybe


def begin_worker_logging(level: str) -> IO[str]:
    """Log as JSON on fd 1 for the parent to relay; fd 1 itself then goes to stderr (relayed as text),
    so nothing a library prints can break the JSON stream."""
    from abook.logs import _LEVELS, install_stdlib_bridge

    stream = os.fdopen(os.dup(1), "w", encoding="utf-8", buffering=1)
    os.dup2(2, 1)
    install_stdlib_bridge()
    observer = FilteringLogObserver(jsonFileLogObserver(stream),
                                    [_ReadyFirst(), LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)
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
