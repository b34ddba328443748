"""What an operator watches: Prometheus metrics (metrics.py), ``/metrics`` and ``/healthz`` over HTTP
(http.py), and the daemons' heartbeats in a shared store (heartbeat.py, ``abook status``)."""
