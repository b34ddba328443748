"""`abook serve` says at start which users and queues have incoming method router but no mailbox that
polls them (the demo's queues were never read, and the log did not mention the router at all)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tests.helpers import free_port, wait_until

VENV_BIN = Path(sys.executable).parent


def _abook(cfg: Path, *argv: str) -> None:
    subprocess.run([str(VENV_BIN / "abook"), *argv, "-c", str(cfg)], check=True, capture_output=True)


def _serve_until(cfg: Path, words: str) -> list[str]:
    """Run ``abook serve`` until a line holding ``words`` is printed, stop it; every line it printed."""
    proc = subprocess.Popen([str(VENV_BIN / "abook"), "serve", "-c", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    reader = threading.Thread(target=lambda: seen.extend(proc.stdout), daemon=True)  # type: ignore[arg-type]
    reader.start()
    try:
        wait_until(lambda: any(words in line for line in seen), timeout=60, what=f"a line saying {words!r}")
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        reader.join(timeout=30)
    return seen


def test_serve_logs_router_owners_nothing_polls(tmp_path: Path) -> None:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "var"\n[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n')
    _abook(cfg, "init")
    _abook(cfg, "bu", "add", "Acme")
    _abook(cfg, "queue", "add", "Support", "--bu", "Acme", "--email", "support@acme.example")
    _abook(cfg, "queue", "set", "Support", "incoming_method=router")
    seen = _serve_until(cfg, "nothing polls")
    warning = next(line for line in seen if "nothing polls" in line)
    assert ("queue:support@acme.example has incoming method router, but nothing polls its mailbox: no [[mailboxes]] "
            "table names it as owner, and there is no [router.user_mailbox_template]. Its mail is not tracked; see "
            "`abook status`") in warning, "".join(seen)
    assert "abook stopped" in "".join(seen)


def test_serve_logs_a_mailbox_whose_owner_does_not_use_the_router(tmp_path: Path) -> None:
    """A [[mailboxes]] table owned by a user whose incoming method is none: the poller reads it, and every
    message stays untracked as ``disabled``; the log says so once, with the command that turns it on."""
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "var"\n[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n'
                   f'[[mailboxes]]\nname = "carol-inbox"\ntype = "imap"\nport = {free_port()}\nowner = "carol"\n'
                   f'username = "carol"\npassword = "x"\n')
    _abook(cfg, "init")
    _abook(cfg, "bu", "add", "Acme")
    _abook(cfg, "user", "add", "carol", "--bu", "Acme", "--email", "carol@acme.example")
    seen = _serve_until(cfg, "turns tracking on")
    warning = next(line for line in seen if "turns tracking on" in line)
    assert ("mailbox carol-inbox is polled for carol, whose incoming method is none: its mail stays in the mailbox "
            "untracked (reason disabled); `abook user set carol incoming_method=router` turns tracking on") in warning
