"""``[metrics] listen``: an HTTP listener with ``/metrics`` (Prometheus text format, every process of the
daemon added up: monitor/metrics.py) and ``/healthz``.

``/healthz`` answers 200 ``ok`` when the daemon is healthy, else 503 with one line per problem:

- the store is unreachable: a ``SELECT 1`` on the ``db`` pool did not succeed within
  ``metrics.store_timeout`` seconds (the database is down, refuses us, or is so slow that LDAP requests
  time out anyway);
- the router is stuck: it polls mailboxes, and no poll has completed (successfully, or with its failure
  recorded in the store) for ``metrics.stuck_after_intervals`` times the shortest poll interval. A
  mailbox whose server is down is not "stuck" (its failure is recorded at every try:
  ``abook_mailbox_errors_total``); a router whose polls hang, or cannot reach the store, is.

Both pages are rendered without blocking the reactor: ``/metrics`` reads the processes' files on a
``metrics`` thread pool of its own (prometheus_client's WSGI app), the store check runs on the ``db`` pool
and concurrent probes share one check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import text
from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from abook.config.model import AbookConfig
from abook.monitor import metrics, reason


def _select_one(session: Any) -> None:
    session.execute(text("SELECT 1"))


class Health:
    """The checks behind ``/healthz``."""

    log = Logger()

    def __init__(self, config: AbookConfig, store: Any, reactor: Any, root: Any) -> None:
        self.config = config
        self.store = store
        self._reactor = reactor
        self._root = root
        self._started = reactor.seconds()
        self._pending: defer.Deferred | None = None

    def store_check(self) -> defer.Deferred:
        """Fires with None (reachable) or the reason it is not; one check at a time, shared by callers."""
        d = self._pending
        if d is None:
            d = self._pending = self.store.run(_select_one)
            d.addTimeout(self.config.metrics.store_timeout, self._reactor)
            d.addCallbacks(lambda _: None, self._unreachable)

            def done(result: Any) -> Any:
                self._pending = None
                return result

            d.addBoth(done)
        out: defer.Deferred = defer.Deferred()
        d.addBoth(lambda r: (out.callback(r), r)[1])
        return out

    def _unreachable(self, failure: Any) -> str:
        if failure.check(defer.TimeoutError, defer.CancelledError):
            return f"store unreachable: no answer within {self.config.metrics.store_timeout:g}s"
        password = getattr(getattr(self.store.engine, "url", None), "password", None)
        return f"store unreachable: {reason(failure.value, password)}"

    def router_problem(self) -> str | None:
        router = self._root.getServiceNamed("router") if "router" in self._root.namedServices else None
        pollers = list(getattr(getattr(router, "pollers", None), "pollers", {}).values()) if router else []
        if not pollers:
            return None
        interval = min(p.mailbox.interval for p in pollers)
        allowed = self.config.metrics.stuck_after_intervals * interval
        since = max(metrics.last_cycle or 0.0, self._started)
        idle = self._reactor.seconds() - since
        if idle > allowed:
            return f"router stuck: no mailbox poll completed for {idle:.0f}s (more than {allowed:g}s)"
        return None

    async def problems(self) -> list[str]:
        found = [p for p in (await self.store_check(), self.router_problem()) if p]
        for p in found:
            self.log.warn("healthz: {problem}", problem=p)
        return found


class HealthResource(resource.Resource):
    isLeaf = True

    def __init__(self, health: Health) -> None:
        super().__init__()
        self.health = health

    def render_GET(self, request: Any) -> Any:
        d = defer.ensureDeferred(self.health.problems())

        def answer(problems: list[str]) -> None:
            request.setResponseCode(503 if problems else 200)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.setHeader(b"cache-control", b"no-store")
            request.write(("\n".join(problems) if problems else "ok").encode() + b"\n")
            request.finish()

        def failed(failure: Any) -> None:
            Logger().failure("healthz failed", failure)
            request.setResponseCode(503)
            request.write(b"health check failed\n")
            request.finish()

        d.addCallbacks(answer, failed)
        return server.NOT_DONE_YET


class _QuietSite(server.Site):
    """No access log line per request: a load balancer probes /healthz every few seconds."""

    noisy = False
    displayTracebacks = False

    def log(self, request: Any) -> None:
        pass


def site(config: AbookConfig, store: Any, reactor: Any, root: Any, pool: Any) -> server.Site:
    """``pool``: the thread pool /metrics reads the files on (prometheus_client's ``MetricsResource`` is
    this WSGI resource on the reactor's shared pool, which also resolves host names: not ours to fill)."""
    from prometheus_client.exposition import make_wsgi_app
    from twisted.web.wsgi import WSGIResource

    top = resource.Resource()
    top.putChild(b"metrics", WSGIResource(reactor, pool, make_wsgi_app(metrics.registry())))
    top.putChild(b"healthz", HealthResource(Health(config, store, reactor, root)))
    return _QuietSite(top)


def metrics_services(config: AbookConfig, store: Any, reactor: Any, root: Any) -> list[Any]:
    """The ``metrics`` thread pool (one thread: scrapes come one at a time) and the listening service of
    ``[metrics] listen`` (a listener that cannot listen stops the start with one line naming the key, as
    the LDAP listeners do), in start order."""
    from abook.server.service import Listener
    from abook.threads import ThreadPoolService

    pool = ThreadPoolService("metrics", 1, 1)
    file = Path(config.config_file).name if config.config_file else ""
    factory = site(config, store, reactor, root, pool.pool)
    return [pool, Listener(config.metrics.listen, factory, reactor, "metrics.listen", config.metrics.listen, file)]


__all__ = ["Health", "HealthResource", "metrics_services", "site"]
