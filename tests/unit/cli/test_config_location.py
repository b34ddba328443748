"""Where `abook` finds its config: `-c` in any position (one global option, before or after the action),
the ABOOK_CONFIG environment variable, else ./abook.toml; and `abook --version`."""

from __future__ import annotations

from pathlib import Path

import pytest

import abook
from abook.cli import main


@pytest.fixture
def site(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config and its store in ``site/``; the commands run from ``elsewhere/``, which has no abook.toml."""
    site = tmp_path / "site"
    site.mkdir()
    config = site / "abook.toml"
    config.write_text('[store]\ndata_dir = "var"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    monkeypatch.delenv("ABOOK_CONFIG", raising=False)
    assert main(["init", "-c", str(config)]) == 0
    assert main(["bu", "add", "Acme", "-c", str(config)]) == 0
    return config


@pytest.mark.parametrize("where", ["global", "group", "action"])
def test_c_works_in_every_position(site: Path, where: str, capsys: pytest.CaptureFixture[str]) -> None:
    argv = {"global": ["-c", str(site), "bu", "list"],
            "group": ["bu", "-c", str(site), "list"],
            "action": ["bu", "list", "-c", str(site)]}[where]
    capsys.readouterr()
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("Acme  (")


def test_c_before_the_action_is_not_overridden_by_the_default(site: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`abook outgoing -c FILE stuck` used to act on ./abook.toml (the action's own -c default won)."""
    capsys.readouterr()
    assert main(["outgoing", "-c", str(site), "stuck"]) == 0
    assert main(["mailbox", "-c", str(site), "enable", "nope"]) == 2
    assert "no mailbox named 'nope'" in capsys.readouterr().err


def test_abook_config_names_the_file_for_every_command(site: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("ABOOK_CONFIG", str(site))
    capsys.readouterr()
    assert main(["bu", "list"]) == 0
    assert main(["check-config"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("Acme  (") and f"{site}: OK" in out
    # -c still wins over the variable
    assert main(["bu", "list", "-c", "missing.toml"]) == 2
    assert "missing.toml: cannot read the config file" in capsys.readouterr().err


def test_without_c_or_the_variable_abook_toml_in_the_current_directory(site: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert main(["bu", "list"]) == 2
    assert "abook.toml: cannot read the config file" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out == f"abook {abook.__version__}\n"
