"""Every relative path in the config is relative to the config file's directory, whatever the current
directory (a shell elsewhere, cron, systemd's /)."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.cli import main
from abook.config import load_config
from tests.fixtures.ldap_server import make_tls_files


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "elsewhere"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def test_every_relative_path_resolves_against_the_config_directory(tmp_path: Path, elsewhere: Path) -> None:
    site = tmp_path / "site"
    (site / "secrets").mkdir(parents=True)
    (site / "tls").mkdir()
    make_tls_files(site / "tls")  # read at load time (config/tls.py)
    (site / "secrets" / "smtp.secret").write_text("s3cret\n")
    (site / "secrets" / "jane.secret").write_text("jane-pw\n")
    config = site / "abook.toml"
    config.write_text(
        '[store]\ndata_dir = "var"\n'
        '[ldap]\ntls_certificate = "tls/cert.pem"\ntls_key = "tls/key.pem"\n'
        '[ldap.upstream]\nurl = "ldaps://ad.example.com"\nca_file = "tls/ca.pem"\n'
        '[logging]\nfile = "log/abook.log"\n'
        '[smtp]\npassword_file = "secrets/smtp.secret"\nca_file = "tls/ca.pem"\n'
        '[[mailboxes]]\nname = "jane"\ntype = "imap"\nowner = "jane"\npassword_file = "secrets/jane.secret"\n'
        '[router.user_mailbox_template]\npassword_dir = "secrets"\nca_file = "/etc/ssl/ca.pem"\n')
    c = load_config(config)
    assert c.store_url == f"sqlite:///{site / 'var' / 'abook.sqlite3'}"
    assert (c.ldap.tls_certificate, c.ldap.tls_key) == (str(site / "tls/cert.pem"), str(site / "tls/key.pem"))
    assert c.ldap.upstream is not None and c.ldap.upstream.ca_file == str(site / "tls/ca.pem")
    assert c.logging.file == str(site / "log/abook.log")
    assert c.smtp is not None and c.smtp.password is not None and c.smtp.password.reveal() == "s3cret"
    assert c.smtp.ca_file == str(site / "tls/ca.pem")
    assert c.mailboxes[0].password is not None and c.mailboxes[0].password.reveal() == "jane-pw"
    template = c.router.user_mailbox_template
    assert template is not None and template.password_dir == str(site / "secrets")
    assert template.ca_file == "/etc/ssl/ca.pem"  # absolute paths stay as they are


def test_logging_to_standard_output_stays(tmp_path: Path, elsewhere: Path) -> None:
    config = tmp_path / "abook.toml"
    config.write_text('[logging]\nfile = "-"\n')
    assert load_config(config).logging.file == "-"


def test_check_config_reads_a_relative_secret_from_another_directory(tmp_path: Path, elsewhere: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """It used to pass in the config's directory and fail elsewhere: `cannot read smtp.secret`."""
    (tmp_path / "smtp.secret").write_text("pw\n")
    config = tmp_path / "b31.toml"
    config.write_text('[smtp]\npassword_file = "smtp.secret"\n')
    assert main(["check-config", str(config)]) == 0
    out, err = capsys.readouterr()
    assert f"{config}: OK" in out and err == ""
