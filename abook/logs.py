"""Logging: twisted.logger observers from the config, and the stdlib -> twisted.logger bridge.

One sink: records from libraries that log through the stdlib (exchangelib, SQLAlchemy) are forwarded
into twisted.logger, so twistd's and ``abook serve``'s log options cover everything. exchangelib stays at
WARNING: at DEBUG it dumps whole SOAP documents, mail bodies included.
"""

from __future__ import annotations

import logging
import sys
from typing import IO, Any

from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
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


def make_observer(level: str = "info", stream: IO[str] | None = None) -> Any:
    predicate = LogLevelFilterPredicate(defaultLogLevel=_LEVELS[level])
    return FilteringLogObserver(textFileLogObserver(stream or sys.stdout), [predicate])


def begin_logging(level: str = "info", file: str = "-") -> None:
    stream: IO[str] = sys.stdout if file == "-" else open(file, "a", encoding="utf-8")  # noqa: SIM115
    install_stdlib_bridge()
    globalLogBeginner.beginLoggingTo([make_observer(level, stream)], redirectStandardIO=False)
