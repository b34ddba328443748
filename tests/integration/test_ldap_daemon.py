"""`abook serve` runs the LDAP listeners from the config: root DSE and a bind answer over a real socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from tests.helpers import free_port, wait_for_port

VENV_BIN = Path(sys.executable).parent


def test_serve_answers_ldap_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n[ldap]\nlisten = ["tcp:{port}:interface=127.0.0.1"]\n')
    subprocess.run([str(VENV_BIN / "abook"), "init", "-c", str(cfg)], check=True, capture_output=True)
    proc = subprocess.Popen([str(VENV_BIN / "abook"), "serve", "-c", str(cfg)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_port(port, proc=proc)
        url = f"ldap://127.0.0.1:{port}"
        r = subprocess.run(["ldapsearch", "-x", "-H", url, "-b", "", "-s", "base", "-LLL", "(objectclass=*)",
                            "namingContexts", "supportedControl"], capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        assert "namingContexts: o=crm" in r.stdout and "supportedControl: 1.2.840.113556.1.4.319" in r.stdout
        r = subprocess.run(["ldapwhoami", "-x", "-H", url, "-D", "nobody", "-w", "wrong"], capture_output=True,
                           text=True, timeout=30)
        assert r.returncode == 49, r.stderr
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, rest
    assert "abook stopped" in rest and "wrong" not in rest
