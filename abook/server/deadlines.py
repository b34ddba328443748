"""What an LDAP connection may hold, and for how long, before it has finished a request or bound.

The idle timer (``limits.idle_timeout``) restarts with every read, so on its own it lets a client keep a
connection, and a partial request of up to ``max_request_size`` bytes, for ever by sending one byte a
little more often than that (slowloris). Three more limits close that gap, in the spirit of slapd's
``idletimeout``/``writetimeout`` and 389-DS's ``ioblocktimeout``:

* **PDU deadline** (``limits.pdu_timeout``): once the first byte of a request has arrived, the whole
  request must arrive within this many seconds, however the bytes trickle in;
* **bind deadline** (``limits.bind_timeout``): a connection that has not bound within this many seconds
  of being accepted is closed (once the requests it has in progress are answered);
* **buffered bytes** (``limits.max_buffered_per_address``, ``limits.max_buffered``): the bytes of
  unfinished requests held for one client address and for all clients of the process; the connection
  whose read goes over either is ended with busy (51).

Only reads that end in the middle of a request do any of this work: a read of whole requests (every
request of a mail client) costs one length test. A closed connection's buffer is dropped when it
closes, not when the garbage collector next finds the connection. A buffer passes through glibc's heap
while it grows (below the 128 KiB mmap threshold, ``process.tune_malloc``), and what other allocations
leave live above it keeps those pages resident: after a connection held 64 KiB or more, ``malloc_trim``
hands the heap's free pages back (at most once a second; measured: 100 stalled 1 MiB requests left
2-5 MB more heap after every round without it, none with it).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ldaptor.protocols.ldap import ldaperrors

from abook.process import trim_heap_soon


class Buffered:
    """Bytes of unfinished requests held per client address and in all (shared by a process's listeners)."""

    def __init__(self, per_address: int, total: int) -> None:
        self.per_address_limit = per_address
        self.total_limit = total
        self.by_address: Counter[str] = Counter()
        self.total = 0

    def change(self, address: str, delta: int) -> bool:
        """Count ``delta`` more bytes for ``address``; False if that takes it or the total over a limit."""
        n = self.by_address[address] + delta
        if n > 0:
            self.by_address[address] = n
        else:
            del self.by_address[address]
        self.total += delta
        return delta <= 0 or (n <= self.per_address_limit and self.total <= self.total_limit)


#: a released buffer at least this large has the heap trimmed soon after
TRIM_AFTER = 65_536


class InputLimits:
    """Mixed into the connection (``protocol.AbookLDAPServer``): the PDU and bind deadlines and the count
    of its buffered bytes. Expects ``factory`` (``clock``, ``buffered``, ``config.limits``), ``framer``,
    ``peer``, ``identity``, ``_outstanding`` and ``close(reason)``."""

    factory: Any
    framer: Any
    peer: str
    identity: Any
    _outstanding: dict

    #: bytes of an unfinished request this connection holds (counted in ``factory.buffered``)
    _held = 0
    #: when the unfinished request began (reactor clock)
    _pdu_started = 0.0
    _pdu_call: Any = None
    _bind_call: Any = None

    def start_bind_deadline(self) -> None:
        timeout = self.factory.config.limits.bind_timeout
        if timeout:
            self._bind_call = self.factory.clock.callLater(timeout, self._bind_deadline)

    def bound(self) -> None:
        """A bind succeeded: the bind deadline is met."""
        if self._bind_call is not None and self._bind_call.active():
            self._bind_call.cancel()
        self._bind_call = None

    def _bind_deadline(self) -> None:
        self._bind_call = None
        if self.identity is not None:
            return
        if self._outstanding:  # a bind (or a search) in progress: look again shortly
            self._bind_call = self.factory.clock.callLater(1.0, self._bind_deadline)
            return
        self.close(f"not bound within {self.factory.config.limits.bind_timeout:g} s")

    def held_changed(self, held: int, completed: bool) -> bool:
        """After a read that leaves ``held`` bytes of an unfinished request (or frees the last held bytes);
        ``completed``: the read also completed a request. False if the connection was ended."""
        delta = held - self._held
        self._held = held
        if delta and not self.factory.buffered.change(self.peer, delta):
            self.close("too many bytes of unfinished requests from its address",
                       ldaperrors.LDAPBusy.resultCode)
            return False
        if held and (completed or held == delta):  # a new request began in this read
            self._pdu_started = self.factory.clock.seconds()
            if self._pdu_call is None:
                self._pdu_call = self.factory.clock.callLater(self.factory.config.limits.pdu_timeout,
                                                              self._pdu_deadline)
        return True

    def _pdu_deadline(self) -> None:
        self._pdu_call = None
        if not self._held:
            return
        timeout = self.factory.config.limits.pdu_timeout
        left = self._pdu_started + timeout - self.factory.clock.seconds()
        if left > 0:  # the request this timer was set for completed; the one since began later
            self._pdu_call = self.factory.clock.callLater(left, self._pdu_deadline)
            return
        self.close(f"request not completed within {timeout:g} s")

    def release_input(self) -> None:
        """Drop the buffered bytes and stop the timers (the connection is ending or has ended)."""
        self.framer.release()
        if self._held:
            self.factory.buffered.change(self.peer, -self._held)
            if self._held >= TRIM_AFTER:
                trim_heap_soon(self.factory.clock)
            self._held = 0
        for call in (self._pdu_call, self._bind_call):
            if call is not None and call.active():
                call.cancel()
        self._pdu_call = self._bind_call = None
