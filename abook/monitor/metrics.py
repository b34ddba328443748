"""The daemon's Prometheus metrics, and the few functions the rest of the code counts through.

Every process counts in its own memory; with ``[metrics] listen`` set, ``enable`` switches prometheus_client
to its multiprocess mode first, so that every value also lands in a small memory-mapped file per process
in ``<data_dir>/runtime/metrics`` (one file per process and metric type, written under a lock, no syscall
per increment). The daemon's ``/metrics`` reads every process's files and adds them up
(``MultiProcessCollector``): counters and histograms are sums over the daemon and its LDAP workers,
including workers that died and were restarted (their files stay until the daemon restarts, so a total
never goes backwards); ``livesum`` gauges (open connections) count live processes only (the daemon
removes a dead worker's gauge file: ``process_ended``).

Why files and not workers reporting to the daemon over a pipe: the LDAP hot path then costs one mmap
write per request and nothing on the daemon's reactor, a worker killed with SIGKILL has lost nothing it
had counted, and aggregation is prometheus_client's own, tested code.

Without ``enable`` (metrics off, command-line tools, tests in-process) nothing is counted
(``NullMetrics``) and prometheus_client is not even imported.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any, Iterable

#: environment variable prometheus_client's multiprocess mode reads (inherited by the LDAP workers)
ENV = "PROMETHEUS_MULTIPROC_DIR"

#: seconds: from a root DSE read to a whole-book download
SEARCH_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: seconds a blocking call waited for a thread of its pool
WAIT_BUCKETS = (0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)

#: bind result code -> outcome label
BIND_OUTCOMES = {0: "success", 49: "invalid_credentials", 51: "rate_limited", 52: "unavailable",
                 13: "tls_required", 53: "refused", 7: "refused"}


class Metrics:
    """Every metric of the daemon. Built once per process, after ``enable`` (if metrics are on)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        registry = CollectorRegistry(auto_describe=True)  # never scraped itself: the files are (or nothing)
        kw: dict[str, Any] = {"registry": registry}
        self.ldap_requests = Counter("abook_ldap_requests", "LDAP requests answered, by operation and result code",
                                     ["operation", "code"], **kw)
        self.ldap_search_seconds = Histogram("abook_ldap_search_seconds",
                                             "Seconds from a search request to its SearchResultDone",
                                             buckets=SEARCH_BUCKETS, **kw)
        self.ldap_binds = Counter("abook_ldap_binds", "LDAP binds, by outcome", ["outcome"], **kw)
        self.ldap_connections = Gauge("abook_ldap_connections", "Open LDAP connections (all processes)",
                                      multiprocess_mode="livesum", **kw)
        self.ldap_process_connections = Gauge("abook_ldap_process_connections", "Open LDAP connections of each "
                                              "process (the daemon and its LDAP workers, by pid)",
                                              multiprocess_mode="liveall", **kw)
        self.mail_polled = Counter("abook_mail_polled", "Messages read from polled mailboxes", **kw)
        self.mail_tracked = Counter("abook_mail_tracked", "Messages tracked as new CRM emails by the router", **kw)
        self.mail_untracked = Counter("abook_mail_untracked", "Messages the router read but did not track, by reason",
                                      ["reason"], **kw)
        self.mailbox_polls = Counter("abook_mailbox_polls", "Mailbox polls, by result (ok, failed)", ["result"], **kw)
        self.mailbox_errors = Counter("abook_mailbox_errors",
                                      "Failed mailbox polls, by kind (transient, permanent, cursor_reset, store)",
                                      ["kind"], **kw)
        self.mailboxes_backing_off = Gauge("abook_mailboxes_backing_off",
                                           "Mailboxes whose polls are backed off after failures",
                                           multiprocess_mode="livesum", **kw)
        self.mailboxes_disabled = Counter("abook_mailboxes_disabled",
                                          "Mailboxes disabled after permanent failures", **kw)
        self.router_cycle = Gauge("abook_router_last_cycle_timestamp_seconds",
                                  "When a mailbox poll last completed (Unix time)", multiprocess_mode="livemax", **kw)
        self.outgoing = Counter("abook_outgoing_emails", "CRM emails sent over SMTP, by result "
                                "(sent, retry, failed)", ["result"], **kw)
        self.sync_actions = Counter("abook_sync_actions", "Synchronisation actions applied, by entity and kind",
                                    ["entity", "kind"], **kw)
        self.sync_conflicts = Counter("abook_sync_conflicts", "Synchronisation conflicts, by entity and resolution "
                                      "(crm, mailbox, manual)", ["entity", "resolution"], **kw)
        self.sync_runs = Counter("abook_sync_runs", "Synchronisation runs of one user, by result (ok, failed)",
                                 ["result"], **kw)
        self.replica_reads = Counter("abook_store_replica_reads", "LDAP store reads meant for a read replica, by "
                                     "who answered (replica; primary: the replica failed it)", ["answered_by"], **kw)
        self.pool_wait_seconds = Histogram("abook_pool_wait_seconds", "Seconds a blocking call waited for a thread "
                                           "of its pool (db: the store)", ["pool"], buckets=WAIT_BUCKETS, **kw)
        self._backing_off: set[str] = set()

    # -- what the rest of the code calls -------------------------------------------------------------

    def ldap_answered(self, operation: str, code: int | str, started: float | None, now: float) -> None:
        self.ldap_requests.labels(operation, str(code)).inc()
        if operation == "search" and started is not None:
            self.ldap_search_seconds.observe(max(now - started, 0.0))

    def connection(self, delta: int) -> None:
        self.ldap_connections.inc(delta)
        self.ldap_process_connections.inc(delta)

    def bind(self, code: int, anonymous: bool) -> None:
        outcome = "anonymous" if anonymous and code == 0 else BIND_OUTCOMES.get(code, "error")
        self.ldap_binds.labels(outcome).inc()

    def batch(self, polled: int, tracked: int, reasons: Iterable[str]) -> None:
        if polled:
            self.mail_polled.inc(polled)
        if tracked:
            self.mail_tracked.inc(tracked)
        for reason in reasons:
            self.mail_untracked.labels(reason).inc()

    def poll_ok(self, mailbox: str, now: float) -> None:
        self.mailbox_polls.labels("ok").inc()
        self.back_off(mailbox, False)
        self.cycle(now)

    def poll_failed(self, kind: str) -> None:
        self.mailbox_polls.labels("failed").inc()
        self.mailbox_errors.labels(kind).inc()

    def back_off(self, mailbox: str, on: bool) -> None:
        if on:
            self._backing_off.add(mailbox)
        else:
            self._backing_off.discard(mailbox)
        self.mailboxes_backing_off.set(len(self._backing_off))

    def cycle(self, now: float) -> None:
        """The router made progress (a poll or a batch completed, or a tick found a mailbox backed off)."""
        global last_cycle
        last_cycle = max(last_cycle or 0.0, now)
        self.router_cycle.set(now)

    def sync_applied(self, entity: str, actions: Iterable[Any]) -> None:
        for action in actions:
            kind = action.kind
            self.sync_actions.labels(entity, kind).inc()
            conflict = getattr(action, "conflict", None)
            if kind == "conflict":
                self.sync_conflicts.labels(entity, "manual").inc()
            elif conflict:
                self.sync_conflicts.labels(entity, getattr(action, "winner", None) or "policy").inc()


class _Nothing:
    """Any metric, any call: does nothing (metrics off)."""

    def __getattr__(self, name: str) -> Any:
        return self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self


class NullMetrics(_Nothing):
    """The metrics of a process that serves none (``[metrics] listen`` unset, command-line tools): nothing
    is counted and prometheus_client is never imported; only the router's progress is kept."""

    def poll_ok(self, mailbox: str, now: float) -> None:
        self.cycle(now)

    def cycle(self, now: float) -> None:
        global last_cycle
        last_cycle = max(last_cycle or 0.0, now)


#: when the router last made progress in this process (reactor seconds); read by /healthz
last_cycle: float | None = None
_metrics: Any = None
_enabled = False


def get() -> Metrics:
    global _metrics
    if _metrics is None:
        _metrics = Metrics() if _enabled else NullMetrics()
    return _metrics


def directory(data_dir: Path) -> Path:
    return data_dir / "runtime" / "metrics"


def enable(path: Path, owner: bool) -> None:
    """Count into files under ``path`` from now on (call before anything is counted). ``owner`` (the
    daemon, not a worker): start from an empty directory, so a restart starts every count from zero as
    Prometheus expects of a new process."""
    global _metrics, _enabled
    from prometheus_client import values

    if owner:
        _own(path)
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.environ[ENV] = str(path)  # the LDAP workers, started later, inherit it
    os.environ.setdefault(ENV, str(path))
    values.ValueClass = values.MultiProcessValue()
    _metrics, _enabled = None, True


_lock: Any = None


def _own(path: Path) -> None:
    """Hold ``<path>.lock`` for the life of the process, so that a second daemon on the same data_dir
    fails at once instead of emptying the directory under the first one's feet."""
    global _lock
    import fcntl

    from abook.errors import UserError

    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        lock = open(path.with_name(path.name + ".lock"), "a")
    except OSError as e:
        raise UserError(f"cannot create the metrics directory {path} (under store.data_dir): {e.strerror}") from None
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock.close()
        raise UserError(f"another abook daemon counts its metrics in {path}: give each daemon on one host its own "
                        "store.data_dir") from None
    _lock = lock


def process_ended(pid: int) -> None:
    """An LDAP worker has exited: its live gauges no longer count (its counters still do)."""
    path = os.environ.get(ENV)
    if path and pid:
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, path)


def registry() -> Any:
    """The registry ``/metrics`` serves: every process's files, added up."""
    from prometheus_client import CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    reg = CollectorRegistry()
    MultiProcessCollector(reg, path=os.environ[ENV])
    return reg
