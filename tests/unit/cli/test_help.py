"""Every `abook ... --help` follows the same rules, checked by walking every subcommand's parser: each
argument says what it is, a repeatable option says so, a default is shown, metavars are words, command
groups name their actions ACTION, every command takes -c, and internal commands stay out of sight."""

from __future__ import annotations

import argparse
import re
from typing import Iterator

import pytest

from abook.cli import build_parser, main

HIDDEN = {"ldap-worker"}


def walk(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from walk(child, (*path, name))


PARSERS = list(walk(build_parser()))
IDS = [" ".join(path) or "abook" for path, _ in PARSERS]


def arguments(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions
            if not isinstance(a, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction))]


def test_the_walk_sees_every_command() -> None:
    names = {" ".join(path) for path, _ in PARSERS}
    assert {"bu move", "bu delete", "role add-standard", "email compose", "email list", "user add",
            "outgoing stuck", "mailbox enable", "import", "check-config"} <= names
    assert len(PARSERS) > 35


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_every_argument_has_help(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    missing = [a.dest for a in arguments(parser) if not a.help]
    assert missing == [], f"abook {' '.join(path)}: no help for {missing}"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_repeatable_options_say_so(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    silent = [a.option_strings[0] for a in arguments(parser)
              if isinstance(a, argparse._AppendAction) and "repeat" not in (a.help or "")]
    assert silent == [], f"abook {' '.join(path)}: {silent} can be repeated but do not say so"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_defaults_are_shown(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    hidden = [a.option_strings[0] for a in arguments(parser)
              if a.option_strings and a.default not in (None, False, [], argparse.SUPPRESS)
              and "default" not in (a.help or "")]
    assert hidden == [], f"abook {' '.join(path)}: the default of {hidden} is not shown"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_metavars_are_upper_case_words(path: tuple[str, ...], parser: argparse.ArgumentParser) -> None:
    bad = []
    for a in arguments(parser):
        if not a.option_strings or a.nargs == 0 or a.choices:
            continue
        metavar = a.metavar or a.dest.upper()
        if len(metavar) < 2 or not re.fullmatch(r"[A-Z][A-Z:=_]*[A-Z]", metavar):
            bad.append(f"{a.option_strings[-1]} {metavar}")
    assert bad == [], f"abook {' '.join(path)}: metavars {bad}"


@pytest.mark.parametrize(("path", "parser"), PARSERS, ids=IDS)
def test_groups_name_their_actions_and_every_command_takes_c(path: tuple[str, ...],
                                                             parser: argparse.ArgumentParser) -> None:
    groups = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if groups:
        assert groups[0].metavar == ("COMMAND" if not path else "ACTION")
    assert "-c" in parser._option_string_actions, f"abook {' '.join(path)} does not take -c"


def test_abook_help_lists_the_commands_but_not_the_internal_ones(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for path, _ in PARSERS:
        if len(path) == 1 and path[0] not in HIDDEN:
            assert re.search(rf"^    {re.escape(path[0])}\b", out, re.M), path
    assert "ldap-worker" not in out
