"""``[metrics] listen``: a Twisted endpoint string checked by check-config as the daemon will parse it."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.cli import main
from abook.config import load_config, parse_config


def test_metrics_are_off_by_default() -> None:
    assert parse_config({}).metrics.listen == ""


def test_check_config_finds_a_bad_metrics_endpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "abook.toml"
    config.write_text('[metrics]\nlisten = "tcp:port=http"\nstuck_after_intervals = 0\n')
    assert main(["check-config", str(config)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "abook: abook.toml: metrics.listen: bad endpoint 'tcp:port=http': port: expected a number from 1 to 65535, "
        "got 'http'",
        "abook: abook.toml: metrics.stuck_after_intervals: expected a number greater than or equal to 1, got 0"]
    config.write_text('[metrics]\nlisten = "ssl:9464"\n')
    assert main(["check-config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        "abook: abook.toml: metrics.listen: metrics are served over plain HTTP: give a tcp: endpoint such as "
        "\"tcp:9464:interface=127.0.0.1\" (on a loopback or private address), got 'ssl:9464'")
    config.write_text('[metrics]\nlisten = "9464"\n')
    assert main(["check-config", str(config)]) == 2
    assert capsys.readouterr().err.strip() == (
        "abook: abook.toml: metrics.listen: expected a Twisted endpoint string such as "
        "\"tcp:9464:interface=127.0.0.1\", got '9464'")
    config.write_text('[metrics]\nlisten = "tcp:9464:interface=127.0.0.1"\n')
    assert main(["check-config", str(config)]) == 0


def test_the_daemon_parses_it_once_pyopenssl_is_decided(tmp_path: Path) -> None:
    """``abook serve`` loads without Twisted's parse (config/endpoints.py) and checks the endpoints after."""
    from abook.config import endpoints
    from abook.errors import ConfigError

    config = tmp_path / "abook.toml"
    config.write_text('[metrics]\nlisten = "tcp:9464:bogus=1"\n')
    loaded = load_config(config, endpoints=False)
    with pytest.raises(ConfigError, match=r"metrics.listen: bad endpoint 'tcp:9464:bogus=1': unknown option 'bogus'"):
        endpoints.check(loaded)
