"""What an operator watches: Prometheus metrics (metrics.py), ``/metrics`` and ``/healthz`` over HTTP
(http.py), and the daemons' heartbeats in a shared store (heartbeat.py, ``abook status``)."""


def reason(error: BaseException, password: object = None) -> str:
    """One short line for a store error in a log line or /healthz: the driver's own message (not
    SQLAlchemy's wrapper with its statement), its first line, never the store's password."""
    from abook.store.outage import StoreOutage

    if isinstance(error, StoreOutage):  # already the database's reason in one line, without secrets
        text = error.reason[:300]
    else:
        inner = getattr(error, "orig", None) or error
        lines = str(inner).strip().splitlines() or [""]
        text = f"{type(inner).__name__}: {lines[0]}"[:300]
    return text.replace(str(password), "***") if password else text
