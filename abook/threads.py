"""Bounded, named thread pools for blocking work, and the runner seam the store and mail code use.

Blocking calls (SQL, exchangelib, imaplib, poplib) never run on the reactor thread: they go through an
``IBlockingRunner``. ``ThreadPoolRunner`` hands them to a dedicated ``ThreadPool`` (never the reactor's
shared one, which also serves name resolution); ``SyncRunner`` runs them inline for synchronous unit tests.
"""

from __future__ import annotations

import time
from typing import Any, Callable, TypeVar

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool
from zope.interface import Interface, implementer

T = TypeVar("T")


class IBlockingRunner(Interface):
    def run(f: Callable[..., Any], *args: Any, **kwargs: Any) -> defer.Deferred:
        """Run f(*args, **kwargs) off the reactor thread; fire with its result."""


@implementer(IBlockingRunner)
class ThreadPoolRunner:
    def __init__(self, reactor: Any, pool: ThreadPool) -> None:
        self._reactor = reactor
        self._pool = pool

    def run(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        return threads.deferToThreadPool(self._reactor, self._pool, _waited, self._wait_metric(), time.monotonic(),
                                         f, *args, **kwargs)

    def _wait_metric(self) -> Any:
        """The histogram of how long calls wait for a thread of this pool (``abook_pool_wait_seconds``)."""
        from abook.monitor import metrics

        m = metrics.get()
        if getattr(self, "_metrics", None) is not m:  # metrics enabled after this runner was made
            self._metrics = m
            self._waits = m.pool_wait_seconds.labels(self._pool.name or "-")
        return self._waits


def _waited(histogram: Any, queued: float, f: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    histogram.observe(time.monotonic() - queued)
    return f(*args, **kwargs)


@implementer(IBlockingRunner)
class SyncRunner:
    """Runs the function at once in the calling thread (tests, command-line tools)."""

    def run(self, f: Callable[..., T], *args: Any, **kwargs: Any) -> defer.Deferred:
        return defer.maybeDeferred(f, *args, **kwargs)


class ThreadPoolService(Service):
    """A named ThreadPool that starts and stops with the service tree."""

    def __init__(self, name: str, minthreads: int, maxthreads: int) -> None:
        self.setName(name)
        self.pool = ThreadPool(minthreads=minthreads, maxthreads=maxthreads, name=name)

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> defer.Deferred | None:
        super().stopService()
        self.pool.stop()
        return None
