"""Who owns queue mail, and `tracking.queue_owner` checked against the store, on the demo organisation
(ldif/demo.ldif: Support's users are dave and gina, neither a System Administrator; admin is one, in
Example Corp above Support)."""

from __future__ import annotations

from pathlib import Path

import pytest
from twisted.internet.testing import MemoryReactor

from abook.cli import main
from abook.config import load_config
from abook.errors import ConfigError
from abook.tap import build_service

REPO = Path(__file__).resolve().parents[3]
MAIL = (b"From: Customer <customer@nowhere.example>\r\nTo: support@example.com\r\nSubject: help\r\n"
        b"Message-ID: <help-1@nowhere.example>\r\nDate: Mon, 07 Dec 2026 10:00:00 +0000\r\n\r\nPlease help.\r\n")


@pytest.fixture
def demo(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    """`abook ...` in-process on a store holding the demo organisation; extra config lines via ``tracking``."""
    store = f"sqlite:///{tmp_path / 'abook.sqlite3'}"

    def config(tracking: str = "") -> Path:
        path = tmp_path / "abook.toml"
        path.write_text(f'[store]\nurl = "{store}"\n' + (f"[tracking]\n{tracking}\n" if tracking else ""))
        return path

    cfg = config()
    assert main(["init", "-c", str(cfg)]) == 0
    assert main(["import", str(REPO / "ldif" / "demo.ldif"), "-c", str(cfg)]) == 0
    (tmp_path / "help.eml").write_bytes(MAIL)
    capsys.readouterr()

    def run(*argv: str, tracking: str = "") -> tuple[int, str, str]:
        code = main([*argv, "-c", str(config(tracking))])
        out, err = capsys.readouterr()
        return code, out, err

    run.eml = str(tmp_path / "help.eml")  # type: ignore[attr-defined]
    run.config = config  # type: ignore[attr-defined]
    return run


def _owner_of(run, out: str) -> str:  # type: ignore[no-untyped-def]
    assert out.startswith("tracked as email "), out
    code, shown, _ = run("email", "show", out.split()[-1])
    assert code == 0
    return next(line.split()[1].rstrip(";") for line in shown.splitlines() if line.strip().startswith("owner:"))


def test_queue_mail_goes_to_the_nearest_system_administrator_above_the_queue(demo) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = demo("track", demo.eml, "--queue", "support@example.com")
    assert code == 0
    assert _owner_of(demo, out) == "admin"  # was dave: the first active user of Support, not an administrator


def test_configured_queue_owner_owns_queue_mail(demo) -> None:  # type: ignore[no-untyped-def]
    code, out, _ = demo("track", demo.eml, "--queue", "support@example.com", tracking='queue_owner = "gina"')
    assert code == 0 and _owner_of(demo, out) == "gina"


@pytest.mark.parametrize("name, problem", [("nobody", "no user named 'nobody' in the store"),
                                           ("erin", "user 'erin' is inactive")])
def test_check_config_and_start_refuse_a_queue_owner_the_store_cannot_use(demo, name: str,  # type: ignore[no-untyped-def]
                                                                          problem: str) -> None:
    tracking = f'queue_owner = "{name}"'
    code, out, err = demo("check-config", tracking=tracking)
    assert code == 2 and out == ""
    assert err.strip() == (f"abook: {demo.config(tracking)}: tracking.queue_owner: {problem}: it must name an "
                           "active user, who owns the email tracked from queues")
    with pytest.raises(ConfigError, match=f"tracking.queue_owner: {problem}"):
        build_service(load_config(str(demo.config(tracking)), endpoints=False), MemoryReactor())
    # and a message tracked anyway says what is wrong, not "set tracking.queue_owner"
    code, out, _ = demo("track", demo.eml, "--queue", "support@example.com", tracking=tracking)
    assert code == 1 and out.strip() == f"not tracked: no_owner (tracking.queue_owner: {problem})"


def test_check_config_accepts_an_active_queue_owner(demo) -> None:  # type: ignore[no-untyped-def]
    code, out, err = demo("check-config", tracking='queue_owner = "GINA"')
    assert (code, err) == (0, "") and ": OK (store sqlite" in out
