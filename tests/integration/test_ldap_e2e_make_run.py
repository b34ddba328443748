"""`make run` (the README's first command) serves the demo organisation over LDAP.

The Makefile's own `run` target runs, with ``CONFIG`` pointing at config/abook.dev.toml adapted to a
temporary data directory and a free port (the real file says ../var and 127.0.0.1:10389); then alice
binds with ldapsearch and reads her Contacts. Running it twice is safe: re-importing changes nothing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tests.helpers import REPO, free_port, wait_for_port


def _dev_config(tmp_path: Path, port: int) -> Path:
    text = (REPO / "config" / "abook.dev.toml").read_text()
    assert 'data_dir = "../var"' in text and '"tcp:10389:interface=127.0.0.1"' in text  # what make run serves
    adapted = text.replace('data_dir = "../var"', f'data_dir = "{tmp_path / "var"}"').replace(
        "tcp:10389:", f"tcp:{port}:")
    path = tmp_path / "abook.dev.toml"
    path.write_text(adapted)
    return path


def _make_run(config: Path, port: int) -> tuple[str, str]:
    proc = subprocess.Popen(["make", "-C", str(REPO), "run", f"CONFIG={config}"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        wait_for_port(port, proc=proc, timeout=120)
        r = subprocess.run(["ldapsearch", "-x", "-H", f"ldap://127.0.0.1:{port}", "-D", "alice", "-w", "alice-demo",
                            "-LLL", "-b", "ou=Contacts,o=crm", "(mail=nancy*)", "cn", "mail"],
                           capture_output=True, text=True, timeout=30)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # make and the abook it started, by the group we created
        out, _ = proc.communicate(timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout, out


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_run_serves_the_demo(tmp_path: Path) -> None:
    port = free_port()
    config = _dev_config(tmp_path, port)
    found, log = _make_run(config, port)
    assert "cn: Nancy Davolio" in found and "mail: nancy.davolio@northwind.example" in found
    assert "53 added" in log
    found, log = _make_run(config, port)  # again on the same store: nothing changes, still served
    assert "cn: Nancy Davolio" in found and "0 added, 0 changed, 53 unchanged" in log
