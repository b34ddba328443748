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

from twisted.internet import defer
from twisted.logger import Logger
from twisted.web import resource, server

from abook.config.model import AbookConfig
from abook.monitor import metrics, reason
from abook.store import ping_txn


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
        self._waiting: list[defer.Deferred] = []
        self._last_check: str | None = None
        self._reported: list[str] = []

    def store_check(self) -> defer.Deferred:
        """Fires with None (reachable) or the reason it is not, within ``store_timeout``. One ``SELECT 1`` at
        a time: probes that come while it runs wait for it, and a hung store is not sent one per probe."""
        if self._pending is None:
            self._pending = self.store.run(ping_txn)
            self._pending.addCallbacks(lambda _: None, self._unreachable)
            self._pending.addBoth(self._checked)
        out: defer.Deferred = defer.Deferred()
        if self._pending is None:  # answered at once
            out.callback(self._last_check)
            return out
        timeout = self.config.metrics.store_timeout
        timer = self._reactor.callLater(timeout, lambda: out.called or out.callback(
            f"store unreachable: no answer within {timeout:g}s"))
        self._waiting.append(out)
        return out.addBoth(lambda r: (timer.active() and timer.cancel(), r)[1])

    def _checked(self, result: str | None) -> None:
        self._pending, self._last_check = None, result
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            if not d.called:
                d.callback(result)

    def _unreachable(self, failure: Any) -> str:
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
        kinds = [p.split(":", 1)[0] for p in found]
        if kinds != self._reported:  # logged when it changes, not at every probe of a load balancer
            if found:
                self.log.warn("healthz: unhealthy: {problems}", problems="; ".join(found))
            else:
                self.log.info("healthz: healthy again")
            self._reported = kinds
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
