"""`abook email set-regarding` and `abook unresolved` as a user runs them on a real SQLite store: a thread
correlated from the command line, and sent mail to unknown addresses."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.cli import main
from abook.store import Store, make_engine
from tests.unit.tracking.conftest import Crm, message, seed


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]):  # type: ignore[no-untyped-def]
    db = tmp_path / "abook.sqlite3"
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\nurl = "sqlite:///{db}"\n')
    assert main(["init", "-c", str(cfg)]) == 0
    store = Store(make_engine(f"sqlite:///{db}"))
    crm = seed(store)
    store.dispose()
    capsys.readouterr()

    def run(*argv: str) -> tuple[int, str]:
        code = main([*argv, "-c", str(cfg)])
        return code, capsys.readouterr().out

    def track(name: str, raw: bytes, *argv: str) -> str:
        path = tmp_path / f"{name}.eml"
        path.write_bytes(raw)
        code, out = run("track", str(path), "--user", "jane", *argv)
        assert code == 0 and out.startswith("tracked as email "), out
        return out.split()[-1]

    run.track = track  # type: ignore[attr-defined]
    run.crm = crm  # type: ignore[attr-defined]
    return run


def _show(cli, activity_id: str) -> dict[str, str]:  # type: ignore[no-untyped-def]
    code, out = cli("email", "show", activity_id)
    assert code == 0
    return {k.strip(): v.strip() for k, _, v in (line.partition(":") for line in out.splitlines()[1:8])}


def test_set_regarding_correlates_the_thread_from_the_command_line(cli) -> None:  # type: ignore[no-untyped-def]
    crm: Crm = cli.crm
    sent = cli.track("sent", message("From: jane@corp.example", "To: Bob <bob@example.net>", "Subject: Offer",
                                     "Message-ID: <offer-1@corp.example>"), "--direction", "out")
    assert _show(cli, sent)["regarding"] == "none"
    code, out = cli("email", "set-regarding", sent, "account:customer ltd")
    assert (code, out.strip()) == (0, f"email {sent} is regarding account {crm.account} (Customer Ltd)")
    assert _show(cli, sent)["regarding"] == f"account {crm.account}"
    reply = cli.track("reply", message("From: bob@example.net", "To: jane@corp.example", "Subject: Re: Offer",
                                       "Message-ID: <re-1@example.net>", "In-Reply-To: <offer-1@corp.example>"))
    shown = _show(cli, reply)
    assert (shown["correlation"], shown["regarding"]) == ("in_reply_to", f"account {crm.account}")
    code, out = cli("email", "set-regarding", reply, "--none")
    assert (code, out.strip()) == (0, f"email {reply} is regarding nothing")
    assert _show(cli, reply)["regarding"] == "none"


def test_set_regarding_refuses_what_it_cannot_set(cli) -> None:  # type: ignore[no-untyped-def]
    sent = cli.track("sent", message("From: jane@corp.example", "To: bob@example.net", "Subject: x",
                                     "Message-ID: <x@corp.example>"), "--direction", "out")
    assert cli("email", "set-regarding", "no-such-email", "account:Customer Ltd")[0] == 2
    assert cli("email", "set-regarding", sent, "account:Nobody Ltd")[0] == 2
    assert cli("email", "set-regarding", sent, "queue:Support")[0] == 2
    assert _show(cli, sent)["regarding"] == "none"


def test_unresolved_lists_sent_mail_to_unknown_addresses_too(cli) -> None:  # type: ignore[no-untyped-def]
    received = cli.track("in", message("From: Who Knows <who@nowhere.example>", "To: jane@corp.example",
                                       "Subject: cold call", "Message-ID: <cold@x>",
                                       "Date: Mon, 07 Dec 2026 09:00:00 +0000"))
    sent = cli.track("out", message("From: jane@corp.example", "To: Bob <bob@example.net>, New One <new@prospect.example>",
                                    "Cc: other@prospect.example", "Subject: intro", "Message-ID: <intro@corp.example>",
                                    "Date: Mon, 07 Dec 2026 10:00:00 +0000"), "--direction", "out")
    known = cli.track("known", message("From: jane@corp.example", "To: bob@example.net", "Subject: known",
                                       "Message-ID: <known@corp.example>"), "--direction", "out")
    code, out = cli("unresolved", "--user", "jane")
    assert code == 0 and known not in out
    assert out.splitlines() == [
        f"{sent}  2026-12-07 10:00:00  to New One <new@prospect.example>, other@prospect.example  'intro'",
        f"{received}  2026-12-07 09:00:00  Who Knows <who@nowhere.example>  'cold call'"]
    assert cli("unresolved", "--user", "jane", "--direction", "out")[1].splitlines() == out.splitlines()[:1]
    assert cli("unresolved", "--user", "jane", "--direction", "in")[1].splitlines() == out.splitlines()[1:]
