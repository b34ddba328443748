"""Config files with several problems report every one, one line each; the LDAP TLS files are checked at
load time (exist, readable, a certificate and a key that belong together), review K4."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from abook.config import load_config, parse_config
from abook.errors import ConfigError
from tests.fixtures.ldap_server import make_tls_files


def _problems(data: dict, config_dir: Path | str = ".") -> list[str]:
    with pytest.raises(ConfigError) as e:
        parse_config(data, file="abook.toml", config_dir=str(config_dir))
    return str(e.value).splitlines()


def test_three_bad_limits_are_three_lines() -> None:
    assert _problems({"ldap": {"limits": {"max_request_size": 0, "idle_timeout": 0, "max_outstanding": 0}}}) == [
        "abook.toml: ldap.limits.idle_timeout: expected a number greater than 0, got 0",
        "abook.toml: ldap.limits.max_request_size: expected a number greater than or equal to 1024, got 0",
        "abook.toml: ldap.limits.max_outstanding: expected a number greater than or equal to 1, got 0",
    ]


def test_problems_in_several_sections_and_the_tls_files_come_together(tmp_path: Path) -> None:
    cert, _key = make_tls_files(tmp_path)
    data = {"store": {"threads": 0}, "ldap": {"tls_certificate": str(cert), "tls_key": "./nonexistent.pem",
                                              "limits": {"size_limit": -5}},
            "logging": {"level": "loud"}}
    assert _problems(data, tmp_path) == [
        "abook.toml: store.threads: expected a number greater than or equal to 1, got 0",
        "abook.toml: ldap.tls_key: no such file ./nonexistent.pem",
        "abook.toml: ldap.limits.size_limit: expected a number greater than or equal to 0, got -5",
        "abook.toml: logging.level: expected 'debug', 'info', 'warn' or 'error', got 'loud'",
    ]


def test_tls_files_that_cannot_be_read(tmp_path: Path) -> None:
    cert, key = make_tls_files(tmp_path)
    (tmp_path / "dir.pem").mkdir()
    assert _problems({"ldap": {"tls_certificate": "dir.pem", "tls_key": "missing-key.pem"}}, tmp_path) == [
        "abook.toml: ldap.tls_certificate: dir.pem is a directory, not a PEM file",
        "abook.toml: ldap.tls_key: no such file missing-key.pem",
    ]
    # relative paths are read from the config file's directory
    config = parse_config({"ldap": {"tls_certificate": "cert.pem", "tls_key": "key.pem"}}, config_dir=str(tmp_path))
    assert config.ldap.tls_key == "key.pem"


def test_a_key_of_another_certificate(tmp_path: Path) -> None:
    cert, _key = make_tls_files(tmp_path)
    other = tmp_path / "other"
    other.mkdir()
    _cert2, key2 = make_tls_files(other)
    assert _problems({"ldap": {"tls_certificate": str(cert), "tls_key": str(key2)}}) == [
        f"abook.toml: ldap.tls_key: the private key in {key2} does not match the certificate in {cert}"]


def test_files_without_the_expected_pem_blocks(tmp_path: Path) -> None:
    cert, key = make_tls_files(tmp_path)
    text = tmp_path / "notes.txt"
    text.write_text("not PEM at all\n")
    assert _problems({"ldap": {"tls_certificate": str(text), "tls_key": str(key)}}) == [
        f"abook.toml: ldap.tls_key: no PEM certificate in {text} or {key}"]
    assert _problems({"ldap": {"tls_certificate": str(cert), "tls_key": str(text)}}) == [
        f"abook.toml: ldap.tls_key: no PEM private key in {text} or {cert}"]


def test_an_encrypted_key(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    cert, key = make_tls_files(tmp_path)
    loaded = serialization.load_pem_private_key(key.read_bytes(), password=None)
    locked = tmp_path / "locked.pem"
    locked.write_bytes(loaded.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.BestAvailableEncryption(b"passphrase")))
    assert _problems({"ldap": {"tls_certificate": str(cert), "tls_key": str(locked)}}) == [
        f"abook.toml: ldap.tls_key: the private key in {locked} is encrypted; give it without a passphrase"]


def test_swapped_or_combined_files_are_accepted_as_the_server_loads_them(tmp_path: Path) -> None:
    cert, key = make_tls_files(tmp_path)
    assert parse_config({"ldap": {"tls_certificate": str(key), "tls_key": str(cert)}}).ldap.serves_tls
    both = tmp_path / "both.pem"
    both.write_bytes(cert.read_bytes() + key.read_bytes())
    assert parse_config({"ldap": {"tls_certificate": str(both), "tls_key": str(both)}}).ldap.serves_tls


def test_one_tls_file_without_the_other_and_ldaps_without_files(tmp_path: Path) -> None:
    cert, _key = make_tls_files(tmp_path)
    assert _problems({"ldap": {"tls_certificate": str(cert)}}) == [
        "abook.toml: ldap.tls_key: give both tls_certificate and tls_key, or neither"]
    assert _problems({"ldap": {"listen_tls": ["ssl:10636:interface=127.0.0.1"]}}) == [
        "abook.toml: ldap.listen_tls: LDAPS listeners need tls_certificate and tls_key"]


def test_load_config_resolves_tls_files_beside_the_config(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    make_tls_files(etc)
    f = etc / "abook.toml"
    f.write_text('[ldap]\ntls_certificate = "cert.pem"\ntls_key = "key.pem"\n')
    assert load_config(f).ldap.serves_tls
    shutil.move(str(etc / "key.pem"), str(tmp_path / "key.pem"))
    with pytest.raises(ConfigError) as e:  # the path it looked at, resolved against the config's directory
        load_config(f)
    assert str(e.value) == f"abook.toml: ldap.tls_key: no such file {etc / 'key.pem'}"
