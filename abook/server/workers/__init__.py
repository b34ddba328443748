"""LDAP worker processes: ``ldap.workers = N`` serves LDAP from N processes sharing the listening sockets.

The parent's side is ``pool.py`` (``WorkerPool`` starts, relays and restarts the children), the child's
is ``adopt.py`` (it adopts the inherited sockets, logs as JSON for the parent, stops when the parent
goes), and ``balancer.py`` keeps the processes' connection counts level.

One Python process serves LDAP on about one core (the GIL). With ``workers = N > 1`` the daemon runs as
with one (store, router and LDAP listeners in the parent) and, once its LDAP ports listen, starts N - 1
LDAP-only children (``python -m abook ldap-worker``, Twisted's "one or more processes" pattern). Each child
inherits the listening sockets through ``childFDs`` and adopts them (``reactor.adoptStreamPort``); the
kernel hands each accepted connection to exactly one process. A child builds its own store (own db
threads), Authenticator (own auth threads) and directory from the same config file, with the same code
as the parent (``ldap_components``), and serves nothing but LDAP.

Per process, therefore: the connection limits, the per-address limits and the failed-bind rate limit;
the encoded-entry and bind caches.

Lifecycle. A child's stdin is a pipe from the parent that carries nothing: when it closes (the parent
exited, however it died) the child stops, as it does on SIGTERM. ``WorkerPool.stopService`` sends SIGTERM
to every child and waits for it (``grace`` seconds, then SIGKILL). A child that exits while the daemon
runs is logged and restarted after a back-off that doubles with every child that dies before it served or
within ``STABLE_SECONDS`` of its start (0.5 s, 1 s, 2 s ... up to 30 s), so one that cannot start does not spin.

Logs. A child writes its twisted.logger events as JSON text sequences on fd 1; the parent re-publishes
them into its own log (so ``abook serve``'s and twistd's log options cover the children too), marked
``worker N``. Anything else a child prints (fd 2, e.g. a traceback before logging starts) is relayed
line by line as warnings. Secrets are never on a child's command line: it gets the config file's path.
"""
