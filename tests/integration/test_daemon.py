"""The daemon starts from a config file, logs, and stops cleanly on SIGTERM (abook serve and twistd)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import free_port

VENV_BIN = Path(sys.executable).parent


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(
        f'[store]\ndata_dir = "{tmp_path / "var"}"\n[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n'
    )
    subprocess.run([str(VENV_BIN / "abook"), "init", "-c", str(cfg)], check=True, capture_output=True)
    return cfg


def _run_until_started(cmd: list[str], cwd: Path) -> subprocess.Popen:
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    said = []
    for line in proc.stdout:
        if "abook started" in line:
            return proc
        said.append(line)
    raise AssertionError(f"daemon exited with {proc.wait()} before starting: {''.join(said)[-3000:]}")


@pytest.mark.parametrize("how", ["serve", "twistd"])
def test_daemon_starts_and_stops_on_sigterm(tmp_path: Path, how: str) -> None:
    cfg = _config(tmp_path)
    if how == "serve":
        cmd = [str(VENV_BIN / "abook"), "serve", "-c", str(cfg)]
    else:
        cmd = [str(VENV_BIN / "twistd"), "-n", "--pidfile=", "abook", "-c", str(cfg)]
    proc = _run_until_started(cmd, tmp_path)
    os.kill(proc.pid, signal.SIGTERM)
    rest, _ = proc.communicate(timeout=30)
    # twistd re-raises the signal it stopped on, so its exit status says "terminated by SIGTERM".
    assert proc.returncode == (0 if how == "serve" else -signal.SIGTERM), rest
    assert "abook stopped" in rest


def test_serve_refuses_an_uninitialised_store(tmp_path: Path) -> None:
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n')
    r = subprocess.run([str(VENV_BIN / "abook"), "serve", "-c", str(cfg)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert "run `abook init`" in r.stderr


def test_check_config_cli(tmp_path: Path) -> None:
    root = Path(__file__).resolve().parents[2]
    ok = subprocess.run([str(VENV_BIN / "abook"), "check-config", str(root / "config/abook.example.toml")],
                        capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text("[ldap]\nlisten = 10389\n")
    r = subprocess.run([str(VENV_BIN / "abook"), "check-config", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        'abook: bad.toml: ldap.listen: expected a Twisted endpoint string such as '
        '"tcp:10389:interface=127.0.0.1", got 10389'
    )
    r = subprocess.run([str(VENV_BIN / "abook"), "check-config", str(tmp_path / "missing.toml")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "missing.toml: cannot read the config file" in r.stderr


def test_check_config_and_serve_report_every_problem_one_line_each(tmp_path: Path) -> None:
    """Review K4: a missing tls_key file was "OK" to check-config and a 38-line traceback from serve."""
    from tests.fixtures.ldap_server import make_tls_files

    cert, _key = make_tls_files(tmp_path)
    cfg = tmp_path / "abook.toml"
    cfg.write_text(f'[store]\ndata_dir = "{tmp_path / "var"}"\n[ldap]\nlisten = ["tcp:{free_port()}:interface=127.0.0.1"]\n'
                   f'tls_certificate = "{cert}"\ntls_key = "./nonexistent.pem"\n'
                   '[ldap.limits]\nidle_timeout = -1\nsize_limit = -5\n')
    expected = [
        f"abook: abook.toml: ldap.tls_key: no such file {tmp_path / 'nonexistent.pem'}",  # resolved beside the file
        "abook: abook.toml: ldap.limits.idle_timeout: expected a number greater than 0, got -1",
        "abook: abook.toml: ldap.limits.size_limit: expected a number greater than or equal to 0, got -5",
    ]
    for command in ("check-config", "serve"):
        r = subprocess.run([str(VENV_BIN / "abook"), command, "-c", str(cfg)], capture_output=True, text=True,
                           timeout=60)
        assert (r.returncode, r.stderr.splitlines(), r.stdout) == (2, expected, ""), command


def _cpus_of_threads(pid: int) -> set[str]:
    out = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        out.add(next(line.split(":", 1)[1].strip() for line in status.splitlines()
                     if line.startswith("Cpus_allowed_list")))
    return out


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to tell one from all")
@pytest.mark.parametrize("affinity", ["one", "all"])
def test_daemon_threads_run_on_one_cpu_unless_told_otherwise(tmp_path: Path, affinity: str) -> None:
    cfg = _config(tmp_path)
    if affinity == "all":
        cfg.write_text(cfg.read_text() + '[process]\ncpu_affinity = "all"\n')
    proc = _run_until_started([str(VENV_BIN / "abook"), "serve", "-c", str(cfg)], tmp_path)
    try:
        threads = len(os.listdir(f"/proc/{proc.pid}/task"))
        cpus = _cpus_of_threads(proc.pid)
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=30)
    assert threads > 1  # the db pool's threads have started: they are covered too
    if affinity == "one":
        assert len(cpus) == 1 and cpus.pop().isdigit()
    else:
        assert len(cpus) == 1 and not cpus.pop().isdigit()  # e.g. "0-1": every CPU this test may use
