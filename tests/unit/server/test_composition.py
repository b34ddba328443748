"""The server is composed like twisted.names: it sees the directory and the bind check only through
``IDirectory`` and ``IAuthenticator``; ``tap.py`` builds the providers."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

from zope.interface.verify import verifyClass

import abook.server
from abook.directory.api import IAuthenticator, IDirectory
from abook.directory.auth import Authenticator
from abook.directory.search import StoreDirectory
from tests.fakes.directory import MemoryDirectory

#: what server/ may import from the layers below it: the seam and pure helpers, no provider, no store
#: (abook.monitor.metrics is a leaf: it imports nothing of abook)
ALLOWED = {"abook.monitor.metrics", "abook.directory.api", "abook.directory.matching", "abook.directory.attributes",
           "abook.directory.entries", "abook.config", "abook.config.model", "abook.errors", "abook.ber",
           "abook.logs", "abook.threads", "abook.process", "abook.signals",
           "abook.monitor.metrics"}  # counters only: it imports nothing of abook


def _imports(path: Path) -> set[str]:
    """The abook modules a file imports (``from abook.directory import matching``: abook.directory.matching)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                out.add(sub if importlib.util.find_spec(node.module).submodule_search_locations is not None
                        and importlib.util.find_spec(sub) is not None else node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m.startswith("abook.") and not m.startswith("abook.server")}


def test_the_providers_implement_the_interfaces() -> None:
    assert verifyClass(IAuthenticator, Authenticator)
    assert verifyClass(IDirectory, StoreDirectory)
    assert verifyClass(IDirectory, MemoryDirectory)


def test_server_imports_no_provider() -> None:
    """The search and bind providers (directory.search, directory.auth) and the store are built in tap.py
    (they were built lazily in server/service.py)."""
    root = Path(abook.server.__file__).parent
    found = {str(f.relative_to(root)): _imports(f) - ALLOWED for f in root.rglob("*.py")}
    assert {name: mods for name, mods in found.items() if mods} == {}
