"""`abook import` and `abook export` as an admin runs them: one summary line, one error line, exit 2."""

from __future__ import annotations

import io
import os
import stat
from pathlib import Path

import pytest

from abook.cli import main
from abook.store import Store
from abook.transfer.progress import Progress
from tests.unit.transfer.conftest import DEMO, snapshot


@pytest.fixture
def config(store: Store, tmp_path: Path) -> Path:
    f = tmp_path / "abook.toml"
    f.write_text(f'[store]\nurl = "{store.engine.url.render_as_string(hide_password=False)}"\n'
                 '[import]\ndefault_owner = "carol"\n')
    return f


def test_import_then_export_then_reimport(config: Path, store: Store, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", "-c", str(config), str(DEMO)]) == 0
    out, err = capsys.readouterr()
    assert out.startswith(f"imported {DEMO}: 53 records (53 added, 0 changed, 0 unchanged;")
    assert err == ""  # no progress bar when stderr is not a terminal
    exported = tmp_path / "out.ldif"
    assert main(["export", "-c", str(config), "-o", str(exported)]) == 0
    assert "exported 53 records (5 businessunit, 6 role, 8 systemuser" in capsys.readouterr().err
    before = snapshot(store)
    assert main(["import", "-c", str(config), str(exported)]) == 0
    assert "(0 added, 0 changed, 53 unchanged; 10 other entries skipped)" in capsys.readouterr().out
    assert snapshot(store) == before
    assert main(["export", "-c", str(config), "--entity", "queue"]) == 0
    out = capsys.readouterr().out
    assert out.count("crmEntity: queue") == 3 and "crmEntity: contact" not in out


def test_plain_ldif_owner_comes_from_the_config_or_the_option(config: Path, store: Store, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    main(["import", "-c", str(config), str(DEMO)])
    f = tmp_path / "p.ldif"
    f.write_text("dn: cn=A B,o=x\nobjectClass: inetOrgPerson\ncn: A B\nsn: B\nmail: ab@example.org\n\n"
                 "dn: cn=C D,o=x\nobjectClass: inetOrgPerson\ncn: C D\nsn: D\n")
    assert main(["import", "-c", str(config), str(f)]) == 0
    assert main(["import", "-c", str(config), str(f), "--entity", "lead", "--owner", "bob"]) == 0
    capsys.readouterr()
    main(["export", "-c", str(config), "--entity", "contact", "--entity", "lead"])
    out = capsys.readouterr().out
    assert out.count("sourcedn: cn=A B,o=x") == 1 and out.count("uid=") == 16 + 6 + 2 + 2
    assert out.count("ownerid: 30000000-0000-4000-8000-000000000004") >= 2  # carol, from [import]
    assert out.count("ownerid: 30000000-0000-4000-8000-000000000003") >= 2  # bob, from --owner


def test_malformed_file_exits_2_with_one_line(config: Path, store: Store, tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.ldif"
    bad.write_text("version: 1\n\ndn: uid=10000000-0000-4000-8000-000000000001,ou=BusinessUnits,o=crm\n"
                   "objectClass: crmRecord\ncrmEntity: businessunit\nname: X\n\ndn: cn=x\ncn:: %%%\n")
    assert main(["import", "-c", str(config), str(bad)]) == 2
    out, err = capsys.readouterr()
    assert (out, err) == ("", "abook: bad.ldif:9: the base64 value of cn is not valid base64\n")
    assert all(rows == [] for rows in snapshot(store).values())
    assert main(["import", "-c", str(config), str(tmp_path / "missing.ldif")]) == 2
    assert capsys.readouterr().err.startswith(f"abook: {tmp_path / 'missing.ldif'}: cannot read: No such file")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only() -> None:
    tty = Terminal()
    bar = Progress(tty)
    bar.phase("writing", 200, " records")
    bar.advance(100)
    bar.finish()
    lines = tty.getvalue().split("\r")
    assert lines[1].startswith("writing    [" + "-" * 30 + "]   0.0% 0/200 records")
    assert lines[-1] == "writing    [" + "#" * 30 + "] 100.0% 200/200 records\n"
    pipe = io.StringIO()
    quiet = Progress(pipe)
    quiet.phase("writing", 10)
    quiet.advance(10)
    quiet.finish()
    assert pipe.getvalue() == ""


def test_an_export_holding_password_hashes_is_private(config: Path, store: Store, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's users have argon2 hashes: the file is 0600 whatever the umask, even if it existed as 0644,
    and the summary says what it holds; --without-passwords leaves the hashes out."""
    assert main(["import", "-c", str(config), str(DEMO)]) == 0
    capsys.readouterr()
    exported = tmp_path / "crm.ldif"
    exported.write_text("old, world-readable")
    exported.chmod(0o644)
    old_umask = os.umask(0o022)
    try:
        assert main(["export", "-c", str(config), "-o", str(exported)]) == 0
        fresh = tmp_path / "fresh.ldif"
        assert main(["export", "-c", str(config), "-o", str(fresh), "--entity", "systemuser"]) == 0
    finally:
        os.umask(old_umask)
    err = capsys.readouterr().err
    assert stat.S_IMODE(exported.stat().st_mode) == 0o600 and stat.S_IMODE(fresh.stat().st_mode) == 0o600
    text = exported.read_text()
    assert text.count("userPassword: {ARGON2}$argon2id$") == 8 and "old, world-readable" not in text
    assert f"the export holds 8 password hashes: {exported} is readable by its owner only (mode 0600)" in err

    assert main(["export", "-c", str(config), "--without-passwords"]) == 0
    out, err = capsys.readouterr()
    assert "userPassword" not in out and out.count("crmEntity: systemuser") == 8
    assert "password hashes" not in err

    assert main(["export", "-c", str(config), "-o", str(tmp_path / "no" / "such" / "dir.ldif")]) == 2
    assert capsys.readouterr().err == f"abook: {tmp_path / 'no' / 'such' / 'dir.ldif'}: cannot write: No such file or directory\n"
