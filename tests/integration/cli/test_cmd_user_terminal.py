"""`abook user passwd` in a separate process, its standard input a real pipe or a pseudo-terminal (the prompt,
without echo): the password never comes back out. Moved from tests/unit/cli/test_cmd_user.py, as these run
child processes and wait on the clock (issue 15, item 5)."""

from __future__ import annotations

import errno
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from abook.passwords import verify_password
from tests.helpers import REPO
from tests.unit.cli.conftest import PASSWORD, credentials

CHILD = ("import fcntl, sys, termios\n"
         "if sys.stdin.isatty(): fcntl.ioctl(0, termios.TIOCSCTTY, 0)\n"
         "from abook.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def _read_until(fd: int, wanted: bytes, seen: bytearray, deadline: float) -> None:
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"no {wanted!r} in {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                chunk = b""
            if not chunk:
                raise EOFError(f"terminal closed before {wanted!r}: {bytes(seen)!r}")
            seen += chunk


def _on_terminal(config: Path, argv: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, bytes]:
    """Run `abook argv` on a fresh pseudo-terminal, typing each answer after its prompt appears."""
    master, slave = os.openpty()
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *argv, "-c", str(config)], stdin=slave, stdout=slave,
                            stderr=slave, start_new_session=True, cwd=REPO)
    os.close(slave)
    seen = bytearray()
    deadline = time.monotonic() + 60
    try:
        for prompt, answer in answers:
            _read_until(master, prompt, seen, deadline)
            os.write(master, answer)
        rc = proc.wait(60)
        try:  # whatever it printed after the last prompt
            while select.select([master], [], [], 0)[0]:
                chunk = os.read(master, 4096)
                if not chunk:
                    break
                seen += chunk
        except OSError as e:  # EIO: the terminal is gone once the child has exited and its output was read
            if e.errno != errno.EIO:
                raise
    finally:
        os.close(master)
    return rc, bytes(seen)


@pytest.fixture
def alice(abook, config: Path) -> Path:  # type: ignore[no-untyped-def]
    assert abook("bu", "add", "Org").rc == 0 and abook("user", "add", "alice", "--bu", "Org").rc == 0
    return config


def test_passwd_prompts_twice_on_a_terminal_without_echo(alice: Path) -> None:
    pw = PASSWORD.encode()
    rc, screen = _on_terminal(alice, ["user", "passwd", "alice"],
                              [(b"New password: ", pw + b"\n"), (b"Retype the password: ", pw + b"\n")])
    assert rc == 0, screen
    assert b"password changed for alice" in screen and pw not in screen
    creds = credentials(alice, "alice")
    assert verify_password(creds.password_hash, PASSWORD)


def test_passwd_on_a_terminal_refuses_two_different_passwords(alice: Path) -> None:
    rc, screen = _on_terminal(alice, ["user", "passwd", "alice"],
                              [(b"New password: ", b"one-password\n"), (b"Retype the password: ", b"another\n")])
    assert rc == 2 and b"the two passwords differ; nothing changed" in screen
    assert b"one-password" not in screen and credentials(alice, "alice").password_hash is None


def test_password_piped_into_a_separate_process(alice: Path) -> None:
    proc = subprocess.run([sys.executable, "-c", CHILD, "user", "passwd", "alice", "--password-stdin", "-c",
                           str(alice)], input=PASSWORD + "\n", capture_output=True, text=True, cwd=REPO)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "password changed for alice\n", "")
    assert verify_password(credentials(alice, "alice").password_hash, PASSWORD)
