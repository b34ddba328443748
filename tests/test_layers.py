"""The import contracts in pyproject.toml hold: layers run against the data flow, and only abook.store imports
the mapped classes (abook.store.models) or SQLAlchemy. ``lint-imports`` checks the same from the shell."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.helpers import REPO

#: ``lint-imports``, run by this interpreter (whichever virtual environment it is in)
LINT = [sys.executable, "-c", "import sys; from importlinter.cli import lint_imports_command; "
        "sys.exit(lint_imports_command())"]


def lint(package_parent: Path) -> subprocess.CompletedProcess[str]:
    """Run lint-imports with the repository's contracts over the ``abook`` package found in package_parent."""
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    return subprocess.run([*LINT, "--config", str(REPO / "pyproject.toml"), "--no-cache"], cwd=package_parent,
                          env=env, capture_output=True, text=True, timeout=300)


def test_the_contracts_hold() -> None:
    result = lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 2 kept, 0 broken." in result.stdout


def copy_of_abook(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "abook", tmp_path / "abook", ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_mapped_classes_imported_by_the_router_break_the_store_contract(tmp_path: Path) -> None:
    root = copy_of_abook(tmp_path)
    (root / "abook" / "routing" / "sneaky.py").write_text("from abook.store.models import Email\n")
    result = lint(root)
    assert result.returncode != 0
    assert "abook.routing.sneaky -> abook.store.models" in result.stdout
    assert "Contracts: 1 kept, 1 broken." in result.stdout


def test_the_store_importing_the_directory_breaks_the_layers(tmp_path: Path) -> None:
    root = copy_of_abook(tmp_path)
    (root / "abook" / "store" / "upward.py").write_text("from abook.directory import tree\n")
    result = lint(root)
    assert result.returncode != 0
    assert "abook.store.upward -> abook.directory.tree" in result.stdout
