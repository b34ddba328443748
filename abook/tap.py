"""The daemon's service tree: ``makeService(options)`` for twistd and ``abook serve``.

Order matters: MultiService starts children in order and stops them in reverse, so the thread pools
start first and stop last, after every poller and listener that uses them.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python import usage

from abook.config import AbookConfig, endpoints, load_config
from abook.config.location import config_file
from abook.directory.api import IDirectory
from abook.errors import UserError
from abook.store import Store, make_engine, schema
from abook.process import leave_out_tls_stack, pin_to_one_cpu, tune_gc, tune_malloc
from abook.threads import ThreadPoolRunner, ThreadPoolService


class Options(usage.Options):
    optParameters = [["config", "c", None, "Path to the abook TOML config file "
                      "(default: $ABOOK_CONFIG, else abook.toml in the current directory)."]]

    def postOptions(self) -> None:
        self["config"] = config_file(self["config"])
        try:
            self["parsed"] = load_config(self["config"])
        except UserError as e:
            raise usage.UsageError(str(e)) from None


class AbookService(MultiService):
    """The root service; it logs when the daemon is up and when it has stopped."""

    log = Logger()
    #: which of the allowed CPUs this process runs on (process.cpu_affinity = "one"): the daemon the
    #: first, LDAP worker i the i-th, so each interpreter lock gets a CPU of its own
    cpu_index = 0
    #: twistd's: a UserError while starting to listen (a port in use) ends the process with its one line,
    #: as ``abook serve`` does, not with twistd's traceback
    exit_on_start_error = False

    def __init__(self, config: AbookConfig, store: Store, reactor: Any, tune_process: bool = False) -> None:
        super().__init__()
        self.config = config
        self.store = store
        self._reactor = reactor
        #: pin the process to a CPU and tune malloc at start (a daemon's own process; never a
        #: test's, which builds services in-process)
        self.tune_process = tune_process

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except UserError as e:
            if not self.exit_on_start_error:
                raise
            raise SystemExit(f"abook: {e}") from None

    def startService(self) -> None:
        if self.tune_process:
            self._tune()
        super().startService()
        # Logged once the reactor runs (and so handles SIGTERM): the line to wait for.
        self._reactor.callWhenRunning(self.log_started)

    def _tune(self) -> None:
        tune_malloc()
        if self.config.process.cpu_affinity == "one":
            # before the thread pools start, so they inherit it (config/abook.example.toml says why)
            cpu = pin_to_one_cpu(self.cpu_index)
            if cpu is not None:
                self.log.info("running on CPU {cpu}", cpu=cpu)

    def log_started(self) -> None:
        self.log.info("abook started with store {dialect}", dialect=self.store.dialect)

    def log_stopped(self) -> None:
        self.log.info("abook stopped")

    def stopService(self) -> Any:
        # Children stop one after another, newest first, each waiting for the one before: a MultiService
        # would stop the db pool while the router still commits the work in hand (and then hang on it).
        Service.stopService(self)
        d: defer.Deferred = defer.succeed(None)
        for child in reversed(list(self)):
            d.addBoth(lambda _, c=child: c.stopService())

        def _stopped(result: Any) -> Any:
            self.store.dispose()
            self.log_stopped()
            return result

        return d.addBoth(_stopped)


class WorkerService(AbookService):
    """The root service of an LDAP worker process (``ldap.workers`` > 1): its own store, LDAP only."""

    def __init__(self, config: AbookConfig, store: Store, reactor: Any, index: int) -> None:
        super().__init__(config, store, reactor, tune_process=True)
        self.index = index
        self.cpu_index = index

    def log_started(self) -> None:
        from abook.server.workers.adopt import READY_KEY

        self.log.info("LDAP worker {index} serving with store {dialect}", index=self.index,
                      dialect=self.store.dialect, **{READY_KEY: True})

    def log_stopped(self) -> None:
        self.log.info("LDAP worker {index} stopped", index=self.index)


def _store(config: AbookConfig, reactor: Any) -> tuple[ThreadPoolService, Store]:
    """The store and the ``db`` thread pool its transactions run on."""
    db_pool = ThreadPoolService("db", 1, config.store.threads)
    timeout = config.store.timeout_seconds
    replicas = [make_engine(url, pool_size=config.store.threads, timeout=timeout) for url in config.store.read_urls]
    store = Store(make_engine(config.store_url, pool_size=config.store.threads, timeout=timeout),
                  ThreadPoolRunner(reactor, db_pool.pool), clock=reactor, timeout=timeout, read_engines=replicas)
    schema.check(store.engine)
    if config.tracking.queue_owner:
        from abook.store.owners import check_queue_owner_txn

        with store.transaction() as session:
            check_queue_owner_txn(session, config.tracking.queue_owner, config.config_file)
    return db_pool, store


def build_service(config: AbookConfig, reactor: Any) -> AbookService:
    """Build the whole daemon from a loaded config. Every component takes ``reactor`` from here."""
    db_pool, store = _store(config, reactor)
    root = AbookService(config, store, reactor, tune_process=True)
    db_pool.setServiceParent(root)
    for component in _components(config, store, reactor):
        component.setServiceParent(root)
    from abook.monitor.heartbeat import Heartbeat
    from abook.routing.service import daemon_id

    Heartbeat(store, reactor, daemon_id(config)).setServiceParent(root)
    if config.metrics.listen:
        from abook.monitor.http import metrics_services

        for service in metrics_services(config, store, reactor, root):
            service.setServiceParent(root)
    return root


def enable_metrics(config: AbookConfig, owner: bool) -> None:
    """With ``[metrics] listen``: count into files every process of the daemon shares (monitor/metrics.py),
    before any service counts anything."""
    if config.metrics.listen:
        from abook.monitor import metrics

        metrics.enable(metrics.directory(config.data_dir), owner)


def build_worker_service(config: AbookConfig, inherited: list[Any], reactor: Any, index: int) -> WorkerService:
    """An LDAP worker process: the daemon's LDAP part on the listening sockets it inherited."""
    db_pool, store = _store(config, reactor)
    root = WorkerService(config, store, reactor, index)
    db_pool.setServiceParent(root)
    components = ldap_components(config, store, reactor, inherited=inherited)
    for component in components:
        component.setServiceParent(root)
    from abook.server.workers.adopt import AdoptedListener
    from abook.server.workers.balancer import Balancer

    path = os.environ.get(Balancer.ENV)
    if path:  # after the listeners: it needs their ports
        listeners = [c for c in components if isinstance(c, AdoptedListener)]
        Balancer(reactor, listeners, index, config.ldap.workers, path=path).setServiceParent(root)
    return root


def run(root: IService, reactor: Any, fatal_start: bool = False, signals: Any = None) -> bool:
    """Start ``root`` with the reactor, stop it on shutdown (SIGTERM, SIGINT), run until then. With
    ``fatal_start``, a service that fails to start stops the reactor; False is returned then.
    ``signals`` (``abook.signals.Signals``) takes over SIGTERM, SIGINT and SIGHUP once the reactor runs."""
    failed: list[bool] = []

    def start() -> None:
        try:
            root.startService()
        except Exception:
            if not fatal_start:
                raise
            Logger().failure("could not start; stopping")
            failed.append(True)
            reactor.stop()

    root.privilegedStartService()
    reactor.callWhenRunning(start)
    if signals is not None:
        import signal

        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the handlers are in: a hangup never kills
        reactor.callWhenRunning(signals.install)
    reactor.addSystemEventTrigger("before", "shutdown", root.stopService)
    reactor.run(installSignalHandlers=True)
    return not failed


def quiet_repeated_stops(reactor: Any) -> None:
    """Once the reactor runs (its SIGTERM and SIGINT handlers are in place): a signal that comes while the
    daemon is already stopping (GNU timeout sends two; Ctrl-C pressed twice; the daemon's SIGTERM to its
    LDAP workers after a Ctrl-C reached them too) is logged as such, not handed to ``reactor.stop`` again,
    which would raise ReactorNotRunning: a critical traceback in the log."""
    import signal

    stopping: list[bool] = []
    reactor.addSystemEventTrigger("before", "shutdown", stopping.append, True)
    for signum in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(signum)
        if not callable(handler):  # ignored, or the default: not the reactor's
            continue

        def once(number: int, frame: Any, handler: Any = handler) -> None:
            if stopping:
                Logger().info("received {signal} while stopping: already stopping",
                              signal=signal.Signals(number).name)
                return
            stopping.append(True)
            handler(number, frame)

        signal.signal(signum, once)


def run_daemon(config: AbookConfig) -> int:
    """The body of ``abook serve``: the whole daemon in the foreground until SIGTERM or SIGINT."""
    leave_out_tls_stack(config)
    endpoints.check(config)  # loaded without Twisted's parse of them: now that pyOpenSSL is decided
    from twisted.internet import reactor

    from abook.logs import begin_logging

    from abook.signals import Signals

    begin_logging(config.logging.level, config.logging.file)
    tune_gc()
    enable_metrics(config, owner=True)
    root = build_service(config, reactor)
    routers = [c for c in root if hasattr(c, "reload_mailboxes")]
    run(root, reactor, signals=Signals(reactor, config, routers[0].reload_mailboxes if routers else None))
    return 0


def run_worker(config: AbookConfig, inherited: list[Any], index: int) -> int:
    """The body of ``abook ldap-worker``, started by the daemon's WorkerPool (abook/server/workers/pool.py).
    Exit status 1 if it could not start (the daemon restarts it after a back-off)."""
    leave_out_tls_stack(config)
    endpoints.check(config)
    from twisted.internet import reactor

    from abook.server.workers.adopt import begin_worker_logging, watch_parent
    from abook.signals import Signals

    begin_worker_logging(config.logging.level)
    tune_gc()
    enable_metrics(config, owner=False)
    root = build_worker_service(config, inherited, reactor, index)
    watch_parent(reactor, 0)
    signals = Signals(reactor, name=f"LDAP worker {index}")
    return 0 if run(root, reactor, fatal_start=True, signals=signals) else 1


# -- composition of the LDAP server (as twisted.names' tap builds its resolvers for DNSServerFactory):
# the directory and the authenticator are built here and reach server/ only through IDirectory and
# IAuthenticator.


def store_directory(config: AbookConfig, store: Any) -> IDirectory:
    """The ``StoreDirectory`` over the store, its searches sharing the ``db`` pool fairly: at most
    ``store.threads - 1`` batches at once (a thread stays free for binds and the router), at most
    ``searches_per_user`` of one user and ``searches_per_connection`` of one connection."""
    from abook.directory.search import StoreDirectory
    from abook.directory.tree import Tree
    from abook.scheduling import FairQueue

    limits = config.ldap.limits
    scheduler = FairQueue(store.reader, max(1, config.store.threads - 1),
                          (limits.searches_per_user, limits.searches_per_connection))
    return StoreDirectory(store, Tree(config.ldap.suffix), encode=True, scheduler=scheduler,
                          cost_limit=limits.search_cost_seconds)


def ldap_components(config: AbookConfig, store: Any, reactor: Any, inherited: list[Any] | None = None
                    ) -> list[IService]:
    """The daemon's LDAP part: the ``auth`` thread pool (started first, stopped last), the listeners and,
    with ``ldap.workers`` > 1, the worker processes sharing them. ``inherited`` (in a worker process): the
    daemon's listening sockets to serve instead of listening on the configured endpoints."""
    from abook.directory.auth import Authenticator
    from abook.server.service import adopted_services, ldap_services

    pool = ThreadPoolService("auth", 1, config.ldap.auth_threads)
    authenticator = Authenticator(store, ThreadPoolRunner(reactor, pool.pool), reactor, config.ldap)
    directory = store_directory(config, store)
    if inherited is not None:
        return [pool, *adopted_services(config.ldap, directory, authenticator, reactor, inherited, config.config_dir)]
    listeners = ldap_services(config.ldap, directory, authenticator, reactor, config.config_dir, config.config_file)
    if config.ldap.workers == 1:
        return [pool, *listeners]
    from abook.server.workers.balancer import Balancer
    from abook.server.workers.pool import WorkerPool

    # Started after the listeners (their sockets are passed on) and stopped before them; the balancer
    # first, so the workers inherit the path of its shared file.
    balancer = Balancer(reactor, listeners, 0, config.ldap.workers)
    return [pool, *listeners, balancer, WorkerPool(config, listeners, reactor)]


def _components(config: AbookConfig, store: Store, reactor: Any) -> list[IService]:
    """The listeners, pollers and schedulers; each package adds its own services here."""
    from abook.routing.unpolled import UnpolledReport

    services: list[IService] = []
    services += ldap_components(config, store, reactor)
    if config.router.enabled and (config.mailboxes or config.smtp or config.router.user_mailbox_template):
        from abook.routing.service import RouterService

        services.append(RouterService(config, store, reactor))
    services.append(UnpolledReport(config, store))
    if config.sync.enabled:
        from abook.directory.local_filter import local_filter_ids_txn
        from abook.routing.service import daemon_id
        from abook.sync.service import SyncService

        services.append(SyncService(config.sync, store, reactor, ldap_ids=local_filter_ids_txn,
                                    holder=daemon_id(config)))
    return services


def makeService(options: Options) -> IService:
    from twisted.internet import reactor

    try:
        enable_metrics(options["parsed"], owner=True)
        root = build_service(options["parsed"], reactor)
    except UserError as e:
        raise SystemExit(f"abook: {e}") from None
    root.exit_on_start_error = True
    reactor.callWhenRunning(quiet_repeated_stops, reactor)
    return root
