"""Bounded, named thread pools for blocking work, and the runner seam the store and mail code use.

Blocking calls (SQL, exchangelib, imaplib, poplib) never run on the reactor thread: they go through an
``IBlockingRunner``. ``ThreadPoolRunner`` hands them to a dedicated ``ThreadPool`` (never the reactor's
shared one, which also serves name resolution); ``SyncRunner`` runs them inline for synchronous unit tests.
"""

from __future__ import annotations

import os
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


_CPUS_VARIABLE = "ABOOK_CPUS"


def pin_to_one_cpu(index: int = 0) -> int | None:
    """Run every thread of this process, and those it starts later, on one of the CPUs it may use.

    ``index`` picks the CPU, round robin over the allowed ones (the parent daemon 0, LDAP worker
    process i on the i-th), so processes that each hold one interpreter lock get a CPU each. Returns the
    CPU, or None where the platform has no affinity calls.
    """
    if not hasattr(os, "sched_getaffinity"):
        return None
    # the CPUs the daemon was given, before it pinned itself; its workers inherit the variable
    given = os.environ.get(_CPUS_VARIABLE)
    cpus = sorted(int(c) for c in given.split(",")) if given else sorted(os.sched_getaffinity(0))
    os.environ[_CPUS_VARIABLE] = ",".join(map(str, cpus))
    cpu = cpus[index % len(cpus)]
    try:
        tasks = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        tasks = [0]
    for tid in tasks:
        try:
            os.sched_setaffinity(tid, {cpu})
        except OSError:  # a thread that ended meanwhile
            pass
    return cpu


#: glibc's default mmap threshold, made fixed: blocks at least this large are mapped and unmapped
MMAP_THRESHOLD = 128 << 10


def tune_malloc(arenas: int = 1, mmap_threshold: int = MMAP_THRESHOLD) -> bool:
    """Make glibc's allocator give memory back: at most ``arenas`` malloc arenas (``M_ARENA_MAX``) and a
    fixed ``M_MMAP_THRESHOLD``. Call it before the thread pools start.

    Arenas: glibc gives threads arenas of their own, and memory a pool thread frees (query rows, encoded
    entries) stays in its arena: in a short load run one arena kept an LDAP process at 143 MB instead of
    163 MB, at no cost in throughput that we could measure (every thread of a process runs on one CPU,
    holding the GIL).

    Threshold: by default glibc raises the threshold to the size of every mapped block that is freed (up
    to 32 MiB), so after one burst of large blocks (a page of a paged download, an argon2 hash's
    memory, a big write buffer) blocks of that size come from the heap, and what they leave free below
    live data stays resident. After the benchmark's paged downloads that was 15-20 MB of free heap in
    the process that served them. Setting the threshold turns that adjustment off (mallopt(3)); blocks
    of 128 KiB and more are then mapped and returned whole when freed (a page fault per 4 KiB touched,
    which no benchmark showed).
    Returns whether both were applied (False off glibc)."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3
    return bool(mallopt(M_ARENA_MAX, arenas)) & bool(mallopt(M_MMAP_THRESHOLD, mmap_threshold))
