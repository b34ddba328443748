"""The tracking commands as a user runs them: a real config file, a real SQLite store (standard input from
another process: tests/integration/tracking/test_track_cli.py)."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from abook.cli import main
from abook.cli.cmd_tracking import parse_since
from abook.store import Store, make_engine
from tests.unit.tracking.conftest import MAIL, Crm, message, seed


@pytest.fixture
def cli_crm(tmp_path: Path) -> tuple[str, Crm]:
    db = tmp_path / "abook.sqlite3"
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n')
    assert main(["init", "-c", str(cfg)]) == 0
    store = Store(make_engine(f"sqlite:///{db}"))
    crm = seed(store)
    store.dispose()
    return str(cfg), crm


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().out


def test_track_show_untracked_and_unresolved(cli_crm: tuple[str, Crm], capsys: pytest.CaptureFixture[str],
                                             tmp_path: Path) -> None:
    cfg, crm = cli_crm
    code, out = _run(capsys, "track", str(MAIL / "plain.eml"), "--user", "JANE@corp.example", "-c", cfg)
    assert code == 0 and out.startswith("tracked as email ")
    activity_id = out.split()[-1]
    code, out = _run(capsys, "track", str(MAIL / "plain.eml"), "--queue", "Support", "-c", cfg)
    assert (code, out.strip()) == (0, f"already tracked as email {activity_id}; recorded as seen in manual:Support")

    code, out = _run(capsys, "email", "show", activity_id, "-c", cfg)
    assert code == 0
    assert "correlation:  none" in out and "regarding:    none" in out
    assert "sender  Alice Example <alice@example.com>  -> contact" in out
    assert f"-> lead {crm.lead} (Alice Lead)" in out
    assert f"-> systemuser {crm.shared_user} (Sam Shared)" in out
    assert "to      Jane Doe <jane@corp.example>  -> systemuser" in out
    assert "manual:JANE@corp.example (manual" in out and "manual:Support (manual" in out

    stranger = tmp_path / "stranger.eml"
    stranger.write_bytes(message("From: Who Knows <who@nowhere.example>", "To: jane@corp.example",
                                 "Subject: cold call", "Message-ID: <cold@x>"))
    assert _run(capsys, "track", str(stranger), "--user", "jane", "-c", cfg)[0] == 0
    code, out = _run(capsys, "unresolved", "--user", "jane", "-c", cfg)
    assert code == 0 and "Who Knows <who@nowhere.example>  'cold call'" in out and activity_id not in out

    code, out = _run(capsys, "track", str(MAIL / "binary_garbage.eml"), "--user", "jane", "-c", cfg)
    assert (code, out.split(":")[0:2]) == (1, ["not tracked", " parse_error (no header fields"])
    code, out = _run(capsys, "track", str(stranger), "--user", "jane", "--mailbox", "manual:jane", "-c", cfg)
    assert code == 1 and out.startswith("not tracked: duplicate")
    code, out = _run(capsys, "untracked", "--since", "1h", "-c", cfg)
    assert code == 0
    lines = [line for line in out.splitlines() if not line.startswith("    ")]
    assert [line.split()[2] for line in lines] == ["duplicate", "parse_error"]
    assert "from who@nowhere.example" in lines[0]
    code, out = _run(capsys, "untracked", "--reason", "parse_error", "-c", cfg)
    assert len([ln for ln in out.splitlines() if "parse_error" in ln]) == 1
    assert _run(capsys, "untracked", "--since", "2999-01-01", "-c", cfg)[1].strip() == "no untracked messages"


def test_unknown_owner_and_bad_arguments_are_one_line_errors(cli_crm: tuple[str, Crm],
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg, _ = cli_crm
    assert main(["track", str(MAIL / "plain.eml"), "--user", "nobody", "-c", cfg]) == 2
    assert capsys.readouterr().err.strip() == "abook: no CRM user 'nobody' (give a user name or an email address)"
    assert main(["untracked", "--since", "last tuesday", "-c", cfg]) == 2
    assert "--since: expected a date" in capsys.readouterr().err
    assert main(["email", "show", "no-such-id", "-c", cfg]) == 2


def test_since_accepts_dates_times_and_ages() -> None:
    now = datetime(2026, 11, 2, 12, 0, tzinfo=timezone.utc)
    assert parse_since("90m", now) == datetime(2026, 11, 2, 10, 30, tzinfo=timezone.utc)
    assert parse_since("7d", now) == datetime(2026, 10, 26, 12, 0, tzinfo=timezone.utc)
    assert parse_since("2026-11-01") == datetime(2026, 11, 1, tzinfo=timezone.utc)
    assert parse_since("2026-11-01T10:00+01:00") == datetime(2026, 11, 1, 9, 0, tzinfo=timezone.utc)
