"""``FairQueue``: a bounded thread pool shared fairly between the users, connections or addresses
whose work it runs.

Each call names its *owners*, outermost first: for a search the bound user (or, anonymous, the client
address) and then the connection; for a password check the client address. Each level has a cap, the
number of calls of one owner at that level that may run at once, and at most ``slots`` calls run in
all. A call that may start runs at once, on the caller's turn (no extra hop: the cheap case costs a few
dictionary look-ups); one that may not waits in its first owner's queue. Whenever a call ends, the
owners with waiting calls are served round robin, each its oldest call that the caps allow, so however
many calls one owner queues, another owner's call waits for at most one call of each owner ahead of it.

The queue is bounded (``max_waiting`` in all, ``max_waiting_per_owner``); a call over a bound fails at
once with ``QueueFull``. Cancelling a waiting call takes it out of the queue. A running call cannot be
stopped from here (the thread runs to its end; stopping a statement is the caller's business): its
Deferred then fails with CancelledError at once, but its slot stays taken until the work ends.

Owners of different levels must not compare equal (e.g. a user id string and a connection number).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Callable, Hashable

from twisted.internet import defer
from twisted.python.failure import Failure

from abook.threads import IBlockingRunner


class QueueFull(Exception):
    """Too many calls are already waiting (in all, or for this owner)."""


class _Call:
    __slots__ = ("owners", "f", "args", "kwargs", "d", "queue")

    def __init__(self, owners: tuple, f: Callable[..., Any], args: tuple, kwargs: dict) -> None:
        self.owners, self.f, self.args, self.kwargs = owners, f, args, kwargs
        self.d: defer.Deferred = defer.Deferred(self._cancelled)
        #: the queue it waits in; None once started (or withdrawn)
        self.queue: FairQueue | None = None

    def _cancelled(self, _d: defer.Deferred) -> None:
        if self.queue is not None:  # still waiting: leave the queue (the Deferred fails with CancelledError)
            self.queue._withdraw(self)


class FairQueue:
    """Runs blocking calls through ``runner``, at most ``slots`` at once, fairly between owners.

    ``runner``: an ``IBlockingRunner``, or anything with the same ``run(f, *args)`` (the ``Store``, whose
    ``run`` adds the session and transaction)."""

    def __init__(self, runner: IBlockingRunner | Any, slots: int, caps: tuple[int, ...] = (),
                 max_waiting: int = 0, max_waiting_per_owner: int = 0) -> None:
        self._runner = runner
        self.slots = max(1, slots)
        self._caps = caps
        self._max_waiting = max_waiting
        self._max_waiting_per_owner = max_waiting_per_owner
        #: calls running now, in all and per owner (any level)
        self.running = 0
        self._held: dict[Hashable, int] = {}
        #: first-level owner -> its waiting calls, oldest first; dict order is the round-robin order
        self._waiting: dict[Hashable, deque[_Call]] = {}
        self.waiting = 0
        #: calls started so far (``contention`` watches it move)
        self.started = 0

    def run(self, owners: tuple, f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run ``f(*args, **kwargs)`` through the runner on behalf of ``owners``; fire with its result."""
        if self.running < self.slots and self._allowed(owners):
            return self._start(owners, f, args, kwargs)
        if self._max_waiting and self.waiting >= self._max_waiting:
            return defer.fail(QueueFull("too many calls waiting"))
        first = owners[0] if owners else None
        queue = self._waiting.get(first)
        if queue is None:
            queue = self._waiting[first] = deque()
        elif self._max_waiting_per_owner and len(queue) >= self._max_waiting_per_owner:
            return defer.fail(QueueFull("too many calls waiting for " + str(first)))
        call = _Call(owners, f, args, kwargs)
        call.queue = self
        queue.append(call)
        self.waiting += 1
        return call.d

    def contention(self) -> Callable[[], bool]:
        """A check a long call can make from its thread, now and then: has another call started since its
        last look, or is one running or waiting besides it? (Reads two counters; no lock needed.)"""
        seen = [self.started]

        def contended() -> bool:
            started = self.started
            moved, seen[0] = started != seen[0], started
            return moved or self.running > 1 or self.waiting > 0

        return contended

    def held(self, owner: Hashable) -> int:
        """How many calls of ``owner`` (at any level) are running."""
        return self._held.get(owner, 0)

    def _allowed(self, owners: tuple) -> bool:
        held = self._held
        for owner, cap in zip(owners, self._caps):
            if held.get(owner, 0) >= cap:
                return False
        return True

    def _start(self, owners: tuple, f: Callable[..., Any], args: tuple, kwargs: dict,
               outer: defer.Deferred | None = None) -> defer.Deferred:
        held = self._held
        for owner in owners:
            held[owner] = held.get(owner, 0) + 1
        self.running += 1
        self.started += 1
        try:
            inner = self._runner.run(f, *args, **kwargs)
        except BaseException:
            self._release(owners)
            raise
        if outer is None:
            outer = defer.Deferred()  # no canceller: cancelling fails it at once, the work runs on
        inner.addBoth(self._finished, owners, outer)
        return outer

    def _finished(self, result: Any, owners: tuple, outer: defer.Deferred) -> None:
        self._release(owners)
        if not outer.called:  # else it was cancelled while running: the late result is dropped
            if isinstance(result, Failure):
                outer.errback(result)
            else:
                outer.callback(result)
        if self.waiting:
            self._dispatch()

    def _release(self, owners: tuple) -> None:
        self.running -= 1
        held = self._held
        for owner in owners:
            n = held[owner] - 1
            if n:
                held[owner] = n
            else:
                del held[owner]

    def _withdraw(self, call: _Call) -> None:
        call.queue = None
        first = call.owners[0] if call.owners else None
        queue = self._waiting.get(first)
        if queue is not None and call in queue:
            queue.remove(call)
            self.waiting -= 1
            if not queue:
                del self._waiting[first]

    def _dispatch(self) -> None:
        """Start waiting calls while slots are free: one per owner per round, owners in turn."""
        while self.waiting and self.running < self.slots:
            started = False
            for first in list(self._waiting):
                if self.running >= self.slots:
                    return
                queue = self._waiting[first]
                for call in queue:
                    if self._allowed(call.owners):
                        break
                else:
                    continue
                queue.remove(call)
                self.waiting -= 1
                del self._waiting[first]
                if queue:
                    self._waiting[first] = queue  # to the end of the round
                call.queue = None
                started = True
                self._start(call.owners, call.f, call.args, call.kwargs, call.d)
            if not started:
                return


__all__ = ["FairQueue", "QueueFull"]
