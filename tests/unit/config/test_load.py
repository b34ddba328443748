"""The config loader: one clear line per mistake, secrets never shown."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.config import load_config, parse_config
from abook.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]


def test_example_config_loads_with_documented_defaults() -> None:
    config = load_config(ROOT / "config" / "abook.example.toml")
    assert config.ldap.listen == ["tcp:10389:interface=127.0.0.1"]
    assert config.ldap.suffix == "o=crm"
    assert config.store_url.endswith("/config/var/abook.sqlite3")


def test_example_documents_every_option() -> None:
    """Every key of every section appears (commented or not) in config/abook.example.toml."""
    from abook.config.model import AbookConfig

    text = (ROOT / "config" / "abook.example.toml").read_text()

    def walk(model: type, prefix: str) -> list[str]:
        keys = []
        for name, field in model.model_fields.items():
            if name in ("config_dir", "config_file"):
                continue
            ann = field.annotation
            sub = getattr(ann, "model_fields", None)
            if sub is None:
                for arg in getattr(ann, "__args__", ()):  # Optional[Section], list[Section]
                    if hasattr(arg, "model_fields"):
                        ann, sub = arg, arg.model_fields
            if sub is not None:
                keys += walk(ann, f"{prefix}{name}.")
            else:
                keys.append(f"{prefix}{name}")
        return keys

    missing = [k for k in walk(AbookConfig, "") if k.rsplit(".", 1)[-1] + " =" not in text]
    missing += [f"[[{name}]]" for name in ("mailboxes",) if f"[[{name}]]" not in text]
    assert missing == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"ldap": {"listen": 10389}},
         'abook.toml: ldap.listen: expected a Twisted endpoint string such as "tcp:10389:interface=127.0.0.1", got 10389'),
        ({"ldap": {"colour": "blue"}}, "abook.toml: ldap.colour: unknown key"),
        ({"store": {"threads": "four"}}, "abook.toml: store.threads: expected integer, got 'four'"),
        ({"ldap": {"auth": "kerberos"}}, "abook.toml: ldap.auth: expected 'local' or 'upstream', got 'kerberos'"),
        ({"ldap": {"limits": {"idle_timeout": 0}}},
         "abook.toml: ldap.limits.idle_timeout: expected a number greater than 0, got 0"),
        ({"ldap": {"upstream": {}}}, "abook.toml: ldap.upstream.url: required key is missing"),
        ({"ldap": {"workers": 0}}, "abook.toml: ldap.workers: expected a number greater than or equal to 1, got 0"),
        ({"ldap": {"workers": 2, "listen_tls": ["ssl:636:privateKey=k.pem:certKey=c.pem"]}},
         "abook.toml: ldap.listen_tls: with workers > 1, give the LDAPS certificate as tls_certificate and tls_key, "
         "not as privateKey= in listen_tls"),
        ({"store": {"read_urls": ["postgresql+psycopg://abook@standby/abook"]}},
         "abook.toml: store.read_urls: read replicas need a PostgreSQL store: set store.url to the primary"),
        ({"store": {"url": "postgresql+psycopg://abook@db/abook", "read_urls": ["sqlite:///replica.sqlite3"]}},
         'abook.toml: store.read_urls: a read replica is a PostgreSQL hot standby '
         '("postgresql+psycopg://user@host/database")'),
        ({"store": {"url": "postgresql+psycopg://abook@db/abook", "read_urls": ["postgresql://a@s/d"] * 2}},
         "abook.toml: store.read_urls: a read replica is listed twice"),
        ({"sync": {"lease_seconds": 0}},
         "abook.toml: sync.lease_seconds: expected a number greater than or equal to 1, got 0"),
    ],
)
def test_bad_values_name_file_key_and_expectation(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(data, file="abook.toml", config_file="/etc/abook/abook.toml")
    assert str(e.value) == message
    assert "\n" not in str(e.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nope.toml: cannot read the config file: No such file"):
        load_config(tmp_path / "nope.toml")


def test_invalid_toml(tmp_path: Path) -> None:
    f = tmp_path / "abook.toml"
    f.write_text("[ldap\n")
    with pytest.raises(ConfigError, match=r"abook.toml: not valid TOML"):
        load_config(f)


def test_secret_inline_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ABOOK_DB_PW", "s3cret-env")
    assert parse_config({"store": {"password": "env:ABOOK_DB_PW"}}).store.password.reveal() == "s3cret-env"
    secret = tmp_path / "pw"
    secret.write_text("s3cret-file\n")
    config = parse_config({"store": {"password_file": str(secret)}})
    assert config.store.password.reveal() == "s3cret-file"
    assert "s3cret" not in repr(config) and "s3cret" not in str(config.store.password)
    assert parse_config({"store": {"password": "inline-pw"}}).store.password.reveal() == "inline-pw"


def test_secret_errors_never_show_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="store.password: environment variable NOPE_NOT_SET is not set"):
        parse_config({"store": {"password": "env:NOPE_NOT_SET"}}, file="abook.toml")
    with pytest.raises(ConfigError, match=r"^abook.toml: store.password_file: cannot read .*missing: No such file"):
        parse_config({"store": {"password_file": str(tmp_path / "missing")}}, file="abook.toml")
