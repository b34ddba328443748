"""Keep the test run inside the repository: a clone must pass with nothing beside it.

An audit hook (PEP 578) watches every file the test process opens or lists and every command it starts.
A path in a *sibling* of the repository (``<clone>/../anything``) is refused with ``OutsideRepository``
and recorded, and the session fails at its end even if the code under test swallowed the error. Paths
elsewhere (``/tmp``, ``/proc``, the interpreter's own files) are none of our business. When the clone
sits directly in a shared root (``/`` or the temporary directory), its siblings are not ours to judge
and the hook stays out of the way.

Child processes (the daemon, slapd, benchmarks) are not covered by the hook: ``tests/test_standalone.py``
checks every tracked file's text for references out of the repository instead.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PARENT = str(REPO.parent)
ACTIVE = PARENT not in ("/", os.path.realpath(tempfile.gettempdir()))

#: every refused path, reported when the session ends
violations: list[str] = []


class OutsideRepository(RuntimeError):
    pass


def outside(path: object) -> bool:
    """Whether ``path`` names something beside the repository (under its parent, not inside it)."""
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    if not isinstance(path, str) or not path:
        return False
    full = os.path.abspath(path)
    if not full.startswith(PARENT + os.sep):
        return False
    return full != str(REPO) and not full.startswith(str(REPO) + os.sep)


def _check(path: object) -> None:
    if outside(path):
        violations.append(str(path))
        raise OutsideRepository(f"a test reached outside the repository: {path}")


def _hook(event: str, args: tuple) -> None:
    if event == "open" or event in ("os.listdir", "os.scandir"):
        _check(args[0])
    elif event == "subprocess.Popen":
        executable, argv = args[0], args[1]
        _check(executable)
        for a in ([argv] if isinstance(argv, (str, bytes)) else argv or ()):
            if isinstance(a, (str, bytes)) and (os.fsdecode(a).startswith(("/", "..")) or "/../" in os.fsdecode(a)):
                _check(a)


def install() -> None:
    if ACTIVE:
        sys.addaudithook(_hook)
