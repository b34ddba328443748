"""Signals as an admin expects them, in ``abook serve`` and its LDAP workers.

- SIGTERM, SIGINT: one clean stop (the services stop in order; a mail operation in hand gets a few
  seconds, then is cut). The same signals again while stopping are logged and change nothing; Twisted's
  own handlers call ``reactor.stop()`` again, which raises ReactorNotRunning: a traceback per signal.
- SIGHUP, daemon: reopens the log file by its name (logrotate's ``postrotate``), then reads the config
  file again and applies what is safe to change while running: the logging level (and file), and the
  ``[[mailboxes]]`` tables, whose pollers are started, stopped or restarted. Any other section that
  changed is named in the log line: it takes effect at the next restart. A config file that no longer
  loads is logged and nothing is changed.
- SIGHUP, LDAP worker: logged and ignored (a worker logs through the daemon and serves LDAP only); a
  hangup of the whole process group no longer kills the workers.
- SIGKILL cannot be handled: the daemon's guarantees hold anyway (a message committed but not marked is
  marked at the next start; a killed worker is restarted, a killed daemon's workers stop).

Handlers only hand the work to the reactor (``callFromThread``): a signal can arrive in the middle of
writing a log line.
"""

from __future__ import annotations

import signal
from typing import Any, Callable

from twisted.internet import defer, error
from twisted.logger import Logger

from abook.config import AbookConfig
from abook.errors import UserError

#: sections SIGHUP applies while running; any other change waits for a restart
RELOADED = ("logging", "mailboxes")

Reload = Callable[[AbookConfig], "defer.Deferred[str] | str"]


class Signals:
    log = Logger()

    def __init__(self, reactor: Any, config: AbookConfig | None = None, reload_mailboxes: Reload | None = None,
                 name: str = "abook") -> None:
        """``config``: the running daemon's (None: a worker, which reloads nothing); ``reload_mailboxes``
        applies new ``[[mailboxes]]`` tables and says what it did."""
        self._reactor = reactor
        self._config = config
        self._reload_mailboxes = reload_mailboxes
        self._name = name
        self._stopping = False

    def install(self) -> None:
        """Replace Twisted's SIGTERM/SIGINT handlers and add SIGHUP's (call it once the reactor runs)."""
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, number: int, frame: Any) -> None:
        self._reactor.callFromThread(self._stop, signal.Signals(number).name)

    def _on_hup(self, number: int, frame: Any) -> None:
        self._reactor.callFromThread(self._hup)

    def _stop(self, name: str) -> None:
        if self._stopping:
            self.log.info("Received {signal} again: {name} is already stopping", signal=name, name=self._name)
            return
        self._stopping = True
        self.log.info("Received {signal}, shutting down.", signal=name)
        try:
            self._reactor.stop()
        except error.ReactorNotRunning:  # already stopping on its own
            pass

    def _hup(self) -> None:
        if self._config is None:
            self.log.info("Received SIGHUP: an LDAP worker has nothing to reload (it logs through the daemon)")
            return
        d = defer.ensureDeferred(self._reload(self._config))
        d.addErrback(lambda f: self.log.failure("reloading on SIGHUP failed", f))

    async def _reload(self, running: AbookConfig) -> None:
        from abook import logs
        from abook.config import load_config

        try:
            path = logs.reopen()
            reopened = f"reopened {path}" if path else "log on standard output"
        except OSError as e:
            reopened = f"could not reopen the log file: {e}"
        try:
            new = load_config(running.config_file)
        except UserError as e:
            self.log.error("Received SIGHUP: {reopened}; {file} was not reloaded, it is not valid: {error}",
                           reopened=reopened, file=running.config_file, error=str(e))
            return
        done = [reopened]
        if new.logging != running.logging:
            if new.logging.file != running.logging.file:
                try:
                    logs.reopen(new.logging.file)
                except OSError as e:
                    self.log.error("Received SIGHUP: cannot log to {file}: {error}", file=new.logging.file,
                                   error=str(e))
                    new = new.model_copy(update={"logging": new.logging.model_copy(
                        update={"file": running.logging.file})})
            logs.set_level(new.logging.level)
            done.append(f"logging level {new.logging.level}, file {new.logging.file}")
        if new.mailboxes != running.mailboxes:
            if self._reload_mailboxes is None:
                done.append("mailboxes not reloaded: the router was not started (restart to start it)")
            else:
                done.append(await defer.maybeDeferred(self._reload_mailboxes, new))
        restart = changed_sections(running, new)
        self._config = running.model_copy(update={"logging": new.logging, "mailboxes": new.mailboxes})
        self.log.info("Received SIGHUP: {done}{restart}", done="; ".join(done),
                      restart=f"; changes that wait for a restart: {', '.join(restart)}" if restart else "")


def changed_sections(old: AbookConfig, new: AbookConfig) -> list[str]:
    """The config sections that differ and are not reloaded while running."""
    before, after = old.model_dump(by_alias=True), new.model_dump(by_alias=True)
    return sorted(k for k in after if k not in RELOADED and before.get(k) != after.get(k))
