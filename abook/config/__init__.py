"""load_config(path) -> AbookConfig: the only reader of the config file.

Every problem becomes one ConfigError line in one format, ``FILE: dotted.key: message``, e.g.
``abook.toml: ldap.listen[0]: bad endpoint 'tcp:port=abc': port: expected a number from 1 to 65535, got
'abc'``; a file with several problems raises ``ConfigErrors``, one line for each. pydantic reports every
field it could not validate, and what only a whole section can see (keys that must come together, such
as ``auth = "upstream"`` and ``[ldap.upstream]``: ``Section.problems_together``) comes with them. What
the daemon would trip over at start is checked here, so ``abook check-config`` finds it: the
TLS files (config/tls.py), the endpoint strings as Twisted parses them (config/endpoints.py), the
placeholders of templates (config/placeholders.py), the store's URL and directory.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from abook.config.base import KeyProblem, KeyProblems
from abook.config.location import LOADER_KEYS, resolve_paths
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


def _problems(err: dict[str, Any], file: str) -> list[ConfigError]:
    """The lines of one pydantic error: a field's validator may name the elements at fault (KeyProblem)."""
    loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
    error = (err.get("ctx") or {}).get("error")
    found = error.problems if isinstance(error, KeyProblems) else [error] if isinstance(error, KeyProblem) else []
    if not found:
        return [ConfigError(_message(err), path=_path(loc), file=file)]
    return [ConfigError(str(p), path=_path((loc[:-1] if p.sibling else loc) + (p.key,)), file=file) for p in found]


def parse_config(data: dict[str, Any], file: str = "<config>", config_dir: str = ".",
                 config_file: str = "", endpoints: bool = True) -> AbookConfig:
    """The config from parsed TOML, or ConfigError(s) naming every problem. ``endpoints``: parse the LDAP
    endpoint strings with Twisted (config/endpoints.py says when not to)."""
    # the loader's own keys are not the file's to set: there they are unknown keys like any other
    problems = [ConfigError("unknown key", path=key, file=file) for key in data if key in LOADER_KEYS]
    data = {k: v for k, v in data.items() if k not in LOADER_KEYS}
    try:
        config = AbookConfig.model_validate({**data, "config_dir": config_dir, "config_file": config_file},
                                            context={"config_dir": config_dir, "endpoints": endpoints})
    except ValidationError as e:
        for err in e.errors(include_url=False):
            for problem in _problems(err, file):
                if str(problem) not in map(str, problems):
                    problems.append(problem)
    if problems:
        raise (problems[0] if len(problems) == 1 else ConfigErrors(problems)) from None
    return config


def load_config(path: str | Path, endpoints: bool = True) -> AbookConfig:
    """Read and check the config file. ``endpoints=False``: leave the Twisted parse of the LDAP endpoints
    to ``config.endpoints.check`` (the daemon, which must decide about pyOpenSSL before Twisted loads)."""
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
    return parse_config(data, file=p.name, config_dir=str(p.resolve().parent), config_file=str(p.resolve()),
                        endpoints=endpoints)
