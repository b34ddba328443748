"""Running `abook ...` in-process against a migrated SQLite store, as an admin types it."""

from __future__ import annotations

import io
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from abook.cli import main
from abook.store import Store, make_engine
from abook.store.users import credentials_for_name_txn

PASSWORD = "Tr0ub4dor&3"


@dataclass
class Result:
    rc: int
    out: str
    err: str


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "abook.toml"
    path.write_text(f'[store]\nurl = "sqlite:///{tmp_path / "abook.sqlite3"}"\n')
    assert main(["init", "-c", str(path)]) == 0
    return path


@pytest.fixture
def abook(config: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Run one `abook ...` command in-process with the given standard input text."""
    capsys.readouterr()

    def run(*argv: str, stdin: str = "") -> Result:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        rc = main([*argv, "-c", str(config)])
        out, err = capsys.readouterr()
        assert PASSWORD not in out + err and "$argon2" not in out + err
        return Result(rc, out, err)

    return run


@pytest.fixture
def org(abook):  # type: ignore[no-untyped-def]
    for argv in (["bu", "add", "Org"], ["bu", "add", "Sales"], ["bu", "add", "East", "--parent", "Sales"],
                 ["role", "add", "rep", "--read", "all=user", "--read", "systemuser=business_unit"],
                 ["role", "add", "manager", "--read", "contact=parent_child"]):
        assert abook(*argv).rc == 0
    return abook


def credentials(config: Path, name: str):  # type: ignore[no-untyped-def]
    store = Store(make_engine(f"sqlite:///{config.parent / 'abook.sqlite3'}"))
    try:
        with store.transaction() as s:
            return credentials_for_name_txn(s, name)
    finally:
        store.dispose()
