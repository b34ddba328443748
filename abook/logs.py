"""Logging: twisted.logger observers from the config, and the stdlib -> twisted.logger bridge.

One sink: records from libraries that log through the stdlib (exchangelib, SQLAlchemy) are forwarded
into twisted.logger, so twistd's and ``abook serve``'s log options cover everything. exchangelib stays at
WARNING: at DEBUG it dumps whole SOAP documents, mail bodies included.

``abook serve`` logs to a ``LogFile`` that ``reopen`` closes and opens again by name (SIGHUP, after
logrotate moved it away), and whose level ``set_level`` changes while running.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any, Callable

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    PredicateResult,
    globalLogBeginner,
    jsonFileLogObserver,
    textFileLogObserver,
)

_LEVELS = {"debug": LogLevel.debug, "info": LogLevel.info, "warn": LogLevel.warn, "error": LogLevel.error}
_STD_TO_TWISTED = {
    logging.DEBUG: LogLevel.debug,
    logging.INFO: LogLevel.info,
    logging.WARNING: LogLevel.warn,
    logging.ERROR: LogLevel.error,
    logging.CRITICAL: LogLevel.critical,
}


class TwistedBridgeHandler(logging.Handler):
    """Forwards stdlib log records into twisted.logger under the record's logger name."""

    def emit(self, record: logging.LogRecord) -> None:
        level = _STD_TO_TWISTED.get(record.levelno, LogLevel.info)
        Logger(namespace=record.name).emit(level, "{stdlib_message}", stdlib_message=record.getMessage())


def install_stdlib_bridge() -> None:
    root = logging.getLogger()
    if not any(isinstance(h, TwistedBridgeHandler) for h in root.handlers):
        root.addHandler(TwistedBridgeHandler())
    root.setLevel(logging.INFO)
    logging.getLogger("exchangelib").setLevel(logging.WARNING)
    logging.getLogger("sqlalchemy").setLevel(logging.WARNING)


def make_observer(level: str = "info", stream: IO[str] | None = None,
                  predicate: LogLevelFilterPredicate | None = None) -> Any:
    predicate = predicate or LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])
    return FilteringLogObserver(textFileLogObserver(stream or sys.stdout), [predicate])


class LogFile:
    """The daemon's log: standard output, or a file opened by name again on ``reopen``."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stream: IO[str] = self._open()

    def _open(self, path: str | None = None) -> IO[str]:
        path = path or self.path
        return sys.stdout if path == "-" else open(path, "a", encoding="utf-8")  # noqa: SIM115

    def write(self, text: str) -> int:
        return self._stream.write(text)

    def flush(self) -> None:
        self._stream.flush()

    def reopen(self, path: str | None = None) -> None:
        """Open the file by its name again (``path``: another name); the old one is closed after."""
        new = self._open(path)  # raises (and changes nothing) when it cannot be opened
        old, self._stream = self._stream, new
        self.path = path or self.path
        if old is not sys.stdout:
            old.close()


_log_file: LogFile | None = None
_predicate: LogLevelFilterPredicate | None = None


def begin_logging(level: str = "info", file: str = "-") -> None:
    global _log_file, _predicate
    _log_file = LogFile(file)
    _predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])
    install_stdlib_bridge()
    globalLogBeginner.beginLoggingTo([make_observer(level, _log_file, _predicate)],  # type: ignore[arg-type]
                                     redirectStandardIO=False)


def begin_json_logging(stream: IO[str], level: str = "info",
                       always: Callable[[dict], bool] | None = None) -> None:
    """Log as JSON text sequences to ``stream`` (an LDAP worker's log, which the daemon relays); events
    for which ``always`` holds pass whatever the level."""
    install_stdlib_bridge()
    predicates: list[Any] = []
    if always is not None:
        predicates.append(lambda event: PredicateResult.yes if always(event) else PredicateResult.maybe)
    predicates.append(LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level]))
    globalLogBeginner.beginLoggingTo([FilteringLogObserver(jsonFileLogObserver(stream), predicates)],
                                     redirectStandardIO=False)


def reopen(path: str | None = None) -> str | None:
    """Reopen the log file begun by ``begin_logging`` (``path``: under another name); its name, or None
    when logging goes to standard output or was not begun here."""
    if _log_file is None:
        return None
    _log_file.reopen(path)
    return None if _log_file.path == "-" else _log_file.path


def set_level(level: str) -> None:
    """The lowest level logged from now on (``begin_logging``'s observer)."""
    if _predicate is not None:
        _predicate.setLogLevelForNamespace(None, _LEVELS[level])  # type: ignore[arg-type]
