"""Sharing listening sockets fairly between the LDAP processes: one accept per wake-up, and a
``Balancer`` that stops a process accepting while it holds more connections than the least loaded one."""

from __future__ import annotations

import contextlib
import mmap
import os
import struct
import tempfile
import time
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.task import LoopingCall


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


def listening_port(service: Any) -> defer.Deferred:
    """The IListeningPort of a started ``strports`` service (None if it failed to listen)."""
    d: defer.Deferred = defer.Deferred()

    def got(port: Any) -> Any:
        d.callback(port)
        return port

    service._waitingForPort.addCallback(got)
    return d
