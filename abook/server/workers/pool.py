"""The parent's side of the LDAP workers: ``WorkerPool`` starts ``ldap.workers - 1`` children on the
parent's listening sockets, relays their logs, restarts one that dies (with a growing back-off) and
stops them with the daemon."""

from __future__ import annotations

import os
import sys
from typing import Any, Callable

from twisted.application.service import Service
from twisted.internet import defer, error, protocol
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.logger import Logger, eventFromJSON, globalLogPublisher

from abook.config.model import AbookConfig
from abook.server.workers.adopt import READY_KEY, InheritedListener
from abook.server.workers.balancer import accept_one_at_a_time, listening_port

#: a child that ran this long before it died is restarted at the base delay again
STABLE_SECONDS = 10.0
BASE_DELAY = 0.5
MAX_DELAY = 30.0


def _family(port: Any) -> str:
    host = port.getHost()
    if isinstance(host, IPv6Address):
        return "INET6"
    if isinstance(host, IPv4Address):
        return "INET"
    if isinstance(host, UNIXAddress):
        return "UNIX"
    # config/endpoints.py admits only listeners of these families (tcp, tcp6, ssl, unix, systemd with
    # domain INET, INET6 or UNIX), so check-config has refused any other before the daemon gets here
    raise TypeError(f"an LDAP worker cannot share a listener on {host!r}")


class WorkerPool(Service):
    """Starts ``ldap.workers - 1`` LDAP child processes on the parent's listening sockets, keeps them up."""

    log = Logger()

    def __init__(self, config: AbookConfig, listeners: list[Any], reactor: Any, grace: float = 10.0) -> None:
        # a config with workers > 1 has a file to read again (config/model.py checks it)
        assert config.config_file
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
