"""Every start-up failure of a real ``abook serve`` / ``abook init`` / ``twistd abook`` is one line naming what to
fix, with no traceback; a second SIGTERM or Ctrl-C while the daemon stops is quiet (review newcomer-2026-12-07,
problems 3, 4, 13 and 14)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from abook.store import schema
from tests.helpers import free_port
from tests.integration.test_daemon import VENV_BIN, _run_until_started

ABOOK = str(VENV_BIN / "abook")


def _write(tmp_path: Path, text: str) -> Path:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(text)
    return cfg


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), cwd=cwd, capture_output=True, text=True, timeout=120)


def _one_line(r: subprocess.CompletedProcess) -> str:
    """The single line a failed command printed (stderr), with nothing on stdout: no traceback."""
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.splitlines()
    assert len(lines) == 1, r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    return lines[0]


@pytest.mark.parametrize("how", ["serve", "twistd"])
def test_a_port_in_use(tmp_path: Path, how: str) -> None:
    """Review 3: the most common failure, 35 lines ending in CannotListenError."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    try:
        cfg = _write(tmp_path, f'[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n')
        _run(ABOOK, "init", "-c", str(cfg), cwd=tmp_path).check_returncode()
        expected = (f"abook: abook.toml: ldap.listen[0]: cannot listen on tcp:{port}:interface=127.0.0.1: Address "
                    "already in use (another process listens there: stop it, or choose another port)")
        if how == "serve":
            assert _one_line(_run(ABOOK, "serve", "-c", str(cfg), cwd=tmp_path)) == expected
        else:  # twistd logs what the process writes on stderr, itself included
            r = _run(str(VENV_BIN / "twistd"), "-n", "--pidfile=", "abook", "-c", str(cfg), cwd=tmp_path)
            assert r.returncode == 1 and "Traceback" not in r.stdout + r.stderr, r.stdout
            assert r.stdout.splitlines()[-1].endswith("[stderr#error] " + expected)
    finally:
        taken.close()


def test_a_bad_endpoint_string(tmp_path: Path) -> None:
    """Review 3: `listen = ["tcp:port=abc"]` passed check-config and ended serve with a ValueError traceback."""
    cfg = _write(tmp_path, '[ldap]\nlisten = ["tcp:port=abc"]\n')
    expected = ("abook: abook.toml: ldap.listen[0]: bad endpoint 'tcp:port=abc': port: expected a number from 1 to "
                "65535, got 'abc'")
    assert _one_line(_run(ABOOK, "check-config", "-c", str(cfg), cwd=tmp_path)) == expected
    assert _one_line(_run(ABOOK, "serve", "-c", str(cfg), cwd=tmp_path)) == expected


def test_a_socket_in_a_missing_directory(tmp_path: Path) -> None:
    """`abook serve` ended in a FileNotFoundError traceback (Twisted's lock file beside the socket). The
    directory may rightly be missing when check-config runs (systemd's RuntimeDirectory= creates /run/abook
    when the service starts), so the daemon says it, in one line, when it cannot listen."""
    socket = tmp_path / "missing" / "ldap.sock"
    cfg = _write(tmp_path, f'[ldap]\nlisten = ["unix:{socket}"]\n')
    _run(ABOOK, "init", "-c", str(cfg), cwd=tmp_path).check_returncode()
    assert _run(ABOOK, "check-config", "-c", str(cfg), cwd=tmp_path).returncode == 0
    assert _one_line(_run(ABOOK, "serve", "-c", str(cfg), cwd=tmp_path)) == (
        f"abook: abook.toml: ldap.listen[0]: cannot listen on unix:{socket}: No such file or directory (create the "
        "socket's directory, or choose another path)")


@pytest.mark.parametrize("command", ["init", "serve"])
def test_a_postgresql_that_refuses_connections(tmp_path: Path, command: str) -> None:
    """Review 3: 113-117 lines ending in OperationalError. The password stays out of the line."""
    port = free_port()  # nothing listens there
    cfg = _write(tmp_path, f'[store]\nurl = "postgresql+psycopg://abook:s3cret-pw@127.0.0.1:{port}/abook"\n')
    line = _one_line(_run(ABOOK, command, "-c", str(cfg), cwd=tmp_path))
    assert line.startswith(f"abook: cannot connect to the store postgresql+psycopg://abook:***@127.0.0.1:{port}/abook "
                           f"(store.url): "), line
    assert "Connection refused" in line and "s3cret" not in line


def test_a_database_abook_does_not_run_on(tmp_path: Path) -> None:
    """Review 3: `mysql://` passed check-config; init ended in `No module named 'MySQLdb'`."""
    cfg = _write(tmp_path, '[store]\nurl = "mysql://abook:s3cret-pw@127.0.0.1/abook"\n')
    for command in ("check-config", "init"):
        assert _one_line(_run(ABOOK, command, "-c", str(cfg), cwd=tmp_path)) == (
            'abook: abook.toml: store.url: abook runs on SQLite (leave url empty for <data_dir>/abook.sqlite3, or '
            '"sqlite:///path") and PostgreSQL ("postgresql+psycopg://user@host/database"), not mysql')


@pytest.mark.parametrize("command", ["init", "serve"])
def test_a_data_dir_that_is_a_file(tmp_path: Path, command: str) -> None:
    """Review 3: a traceback ending in FileExistsError."""
    (tmp_path / "passwd").write_text("root:x:0:0::/root:/bin/sh\n")
    cfg = _write(tmp_path, '[store]\ndata_dir = "passwd"\n')
    assert _one_line(_run(ABOOK, command, "-c", str(cfg), cwd=tmp_path)) == (
        f"abook: abook.toml: store.data_dir: {tmp_path / 'passwd'} is a file, not a directory")


def test_no_store_yet_leaves_nothing_behind(tmp_path: Path) -> None:
    """Review 14: `abook serve` on a store `abook init` never made said so, and left an empty abook.sqlite3."""
    cfg = _write(tmp_path, f'[store]\ndata_dir = "var"\n[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n')
    for command in (["serve"], ["user", "list"], ["status"]):
        assert _one_line(_run(ABOOK, *command, "-c", str(cfg), cwd=tmp_path)) == (
            f"abook: the store is at schema revision none, this abook needs {schema.HEAD}: run `abook init`")
    assert not (tmp_path / "var").exists()
    _run(ABOOK, "init", "-c", str(cfg), cwd=tmp_path).check_returncode()
    assert (tmp_path / "var" / "abook.sqlite3").stat().st_size > 0


def test_upstream_auth_without_its_table_is_refused(tmp_path: Path) -> None:
    """Review 4: the daemon started and checked the local password hashes instead, saying nothing."""
    cfg = _write(tmp_path, f'[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n')
    _run(ABOOK, "init", "-c", str(cfg), cwd=tmp_path).check_returncode()
    cfg.write_text(cfg.read_text() + 'auth = "upstream"\n')
    assert _one_line(_run(ABOOK, "serve", "-c", str(cfg), cwd=tmp_path)) == (
        'abook: abook.toml: ldap.upstream: auth = "upstream" needs an [ldap.upstream] table with the url of the '
        "directory that checks the passwords")


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_second_signal_while_stopping_is_quiet(tmp_path: Path, signum: signal.Signals) -> None:
    """Review 13: a second SIGTERM (GNU timeout sends two) or Ctrl-C logged ReactorNotRunning as critical.

    The daemon's forward mailbox is a server that accepts and never greets, so the poll in hand keeps the
    daemon stopping until the test hangs up on it, after the second signal."""
    tarpit = socket.socket()
    tarpit.bind(("127.0.0.1", 0))
    tarpit.listen()
    tarpit.settimeout(60)
    cfg = _write(tmp_path, f'[store]\ndata_dir = "var"\n[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n'
                           f'[[mailboxes]]\nname = "fwd"\ntype = "imap"\nrole = "forward"\nhost = "127.0.0.1"\n'
                           f'port = {tarpit.getsockname()[1]}\nsecurity = "none"\nusername = "u"\npassword = "p"\n'
                           'timeout = 120.0\n')
    _run(ABOOK, "init", "-c", str(cfg), cwd=tmp_path).check_returncode()
    proc = _run_until_started([ABOOK, "serve", "-c", str(cfg)], tmp_path)
    try:
        poll, _ = tarpit.accept()  # the poll is in hand
        os.kill(proc.pid, signum)
        assert proc.stdout is not None
        seen = []
        for line in proc.stdout:
            seen.append(line)
            if f"Received {signum.name}, shutting down." in line:
                break
        os.kill(proc.pid, signum)  # while it waits for the poll in hand
        for line in proc.stdout:
            seen.append(line)
            if signum.name in line and "already stopping" in line:  # logged, and nothing else done
                break
        poll.close()
        rest, _ = proc.communicate(timeout=60)
    finally:
        tarpit.close()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    log = "".join(seen) + rest
    assert proc.returncode == 0, log
    assert "abook stopped" in log
    assert "ReactorNotRunning" not in log and "Traceback" not in log and "#critical" not in log, log
