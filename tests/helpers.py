"""Small helpers for tests: free ports, waiting for a server to answer, Deferred results."""

from __future__ import annotations

import socket
import subprocess
import uuid
import threading
import time
from typing import Any, Callable

import pytest
from twisted.internet import defer

from abook.store import Store, make_engine, schema
from twisted.python.failure import Failure


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(check: Callable[[], bool], timeout: float = 30.0, what: str = "condition") -> None:
    """Poll ``check`` (a real observation: a port that opens, a file that appears) until it holds."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        pause.wait(0.02)


def port_answers(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def wait_for_port(port: int, host: str = "127.0.0.1", timeout: float = 30.0, proc: Any = None) -> None:
    def check() -> bool:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before listening on {port}")
        return port_answers(port, host)

    wait_until(check, timeout, f"{host}:{port} to accept connections")


def stop_process(proc: Any, timeout: float = 20.0) -> None:
    """Stop a server the test started, by its pid: SIGTERM, then SIGKILL if it has not exited in time."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def memory(pid: int) -> dict[str, float]:
    """VmHWM (peak) and VmRSS (now) resident memory of a process, in MiB."""
    text = _Path(f"/proc/{pid}/status").read_text()
    out = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            out[key] = int(value.split()[0]) / 1024
    return out


def success_result_of(d: defer.Deferred) -> Any:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results, f"{d!r} has not fired"
    if isinstance(results[0], Failure):
        results[0].raiseException()
    return results[0]


def failure_result_of(d: defer.Deferred, *errors: type[BaseException]) -> Failure:
    results: list[Any] = []
    d.addBoth(results.append)
    assert results and isinstance(results[0], Failure), f"{d!r} did not fail: {results!r}"
    if errors:
        assert results[0].check(*errors), results[0]
    return results[0]


#: the repository's top directory: tests read only below it (tests/test_standalone.py checks)
from pathlib import Path as _Path  # noqa: E402

REPO = _Path(__file__).resolve().parents[1]
CORPORA = REPO / "tests" / "data" / "ldap-corpora"


def new_database(kind: str, request: pytest.FixtureRequest, directory: _Path) -> str:
    """The URL of a fresh, empty database of ``kind``: a SQLite file in ``directory``, or a new database
    on the session's private PostgreSQL."""
    if kind == "sqlite":
        return f"sqlite:///{directory / f'abook-{uuid.uuid4().hex[:8]}.sqlite3'}"
    return request.getfixturevalue("postgres_server").create_database()


def new_store(kind: str, request: pytest.FixtureRequest, directory: _Path) -> Store:
    """A migrated store on a fresh database of ``kind``; transactions run inline (no reactor needed)."""
    s = Store(make_engine(new_database(kind, request, directory)))
    schema.upgrade(s.engine)
    return s
