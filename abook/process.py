"""How an abook process tunes itself: garbage collection, glibc's allocator, CPU affinity, and leaving
the TLS stack out. Every daemon process (the daemon and each LDAP worker) applies these at its start
(``tap.py``); ``trim_heap_soon`` runs after a connection released a large buffer (``server/deadlines.py``).
"""

from __future__ import annotations

import ctypes
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from abook.config import AbookConfig


def tune_gc() -> None:
    """The daemon keeps long-lived caches (decoded requests, prepared queries, encoded entries: several
    hundred thousand objects), and every full collection walks them all. Collecting less often cut the
    server CPU of a 100k paged download from 6.0 to 4.0 s and of a contains-search by a quarter."""
    import gc

    gc.set_threshold(50_000, 50, 1000)


def leave_out_tls_stack(config: AbookConfig) -> None:
    """Before the reactor is imported: when LDAP serves no TLS (``LdapConfig.serves_tls``), keep pyOpenSSL
    and cryptography out of the process. Twisted's TCP transport imports them only to offer ``startTLS``
    and runs without them when they cannot be imported (about 12 MB of RSS per process, counted again in
    every LDAP worker). Nothing else here needs them: mailboxes, SMTP and upstream binds use the standard
    library's ``ssl``, exchangelib does without pyOpenSSL. Too late (``twisted.internet.tcp`` already
    imported, as under twistd), it changes nothing."""
    if not config.ldap.serves_tls and "twisted.internet.tcp" not in sys.modules:
        sys.modules.setdefault("OpenSSL", None)  # type: ignore[arg-type]  # import OpenSSL now raises ImportError


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


_trim: dict[str, Any] = {}


def trim_heap_soon(clock: Any) -> None:
    """Give the heap's free pages back to the system within a second (glibc's ``malloc_trim``; elsewhere
    nothing), once however many connections ask."""
    if _trim.get("call") is not None or _trim.get("libc", True) is None:
        return
    if "libc" not in _trim:
        try:
            _trim["libc"] = ctypes.CDLL("libc.so.6").malloc_trim
        except (OSError, AttributeError):
            _trim["libc"] = None
            return

    def trim() -> None:
        _trim["call"] = None
        _trim["libc"](0)

    _trim["call"] = clock.callLater(1.0, trim)
