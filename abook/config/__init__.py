"""load_config(path) -> AbookConfig: the only reader of the config file.

Every problem becomes one ConfigError line naming the file, the dotted key path and what was
expected, e.g. ``abook.toml: ldap.listen[0]: expected a Twisted endpoint string ..., got 10389``; a file
with several problems raises ``ConfigErrors``, one line for each (pydantic reports every field it could
not validate; the TLS files are checked as fields, so their problems come with the others).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from abook.config.location import resolve_paths
from abook.config.model import AbookConfig
from abook.errors import ConfigError, ConfigErrors

__all__ = ["AbookConfig", "load_config", "parse_config"]


def _path(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("function-after", "function-before", "function-plain", "literal", "list"):
            continue
        else:
            out += ("." if out else "") + str(part)
    return out


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    got = err.get("input")
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    msg = err["msg"]
    if msg.startswith("Value error, "):
        msg = msg[len("Value error, "):]
        return msg
    if kind.endswith("_type") or kind.startswith(("int_", "float_", "bool_", "string_")):
        expected = msg.replace("Input should be", "expected").replace("a valid ", "")
        return f"{expected}, got {got!r}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return f"{msg.replace('Input should be', 'expected a number')}, got {got!r}"
    if kind == "literal_error":
        return f"{msg.replace('Input should be', 'expected')}, got {got!r}"
    return f"{msg}, got {got!r}"


def parse_config(data: dict[str, Any], file: str = "<config>", config_dir: str = ".",
                 config_file: str = "") -> AbookConfig:
    try:
        return AbookConfig.model_validate({**data, "config_dir": config_dir, "config_file": config_file},
                                          context={"config_dir": config_dir})
    except ValidationError as e:
        problems: list[ConfigError] = []
        for err in e.errors(include_url=False):
            loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
            problem = ConfigError(_message(err), path=_path(loc), file=file)
            if str(problem) not in map(str, problems):
                problems.append(problem)
        raise (problems[0] if len(problems) == 1 else ConfigErrors(problems)) from None


def load_config(path: str | Path) -> AbookConfig:
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as e:
        raise ConfigError(f"cannot read the config file: {e.strerror}", file=str(p)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError("expected UTF-8 text", file=str(p)) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"not valid TOML: {e}", file=str(p)) from None
    data = resolve_paths(data, p.resolve().parent)  # relative paths are relative to the file (location.py)
    return parse_config(data, file=p.name, config_dir=str(p.resolve().parent), config_file=str(p.resolve()))
