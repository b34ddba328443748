"""Where the config file is, and what its relative paths are relative to.

Every command finds the file the same way: ``-c FILE``, else the ``ABOOK_CONFIG`` environment variable,
else ``abook.toml`` in the current directory. Every path in it (``store.data_dir``, ``ldap.tls_certificate``
and ``tls_key``, ``logging.file``, every ``*_file`` and ``*_dir`` key: secrets, CA bundles, password
directories) is relative to the directory holding the file, never to the current directory, so the
same file means the same thing from a shell, from cron and under systemd (whose current directory is /).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: the environment variable naming the config file for every command (``-c`` wins over it)
CONFIG_ENV = "ABOOK_CONFIG"
DEFAULT_CONFIG = "abook.toml"

#: keys holding a path, besides those ending in ``_file`` or ``_dir``
_PATH_KEYS = frozenset({"data_dir", "tls_certificate", "tls_key"})
#: top-level keys the loader sets itself (in a file, they are unknown keys)
LOADER_KEYS = frozenset({"config_dir", "config_file"})


def config_file(given: str | None) -> str:
    """The config file to read: ``given`` (``-c``), else ``$ABOOK_CONFIG``, else ``./abook.toml``."""
    return given or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG


def _is_path_key(key: str, section: str) -> bool:
    return key in _PATH_KEYS or key.endswith(("_file", "_dir")) or (section == "logging" and key == "file")


def resolve_paths(data: dict[str, Any], config_dir: Path, section: str = "") -> dict[str, Any]:
    """A copy of the parsed TOML with every relative path made absolute against ``config_dir``
    (``logging.file = "-"``, standard output, stays as it is). Values that are not strings are left for
    the model to reject."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out[key] = resolve_paths(value, config_dir, key)
        elif isinstance(value, list):
            out[key] = [resolve_paths(v, config_dir, key) if isinstance(v, dict) else v for v in value]
        elif (isinstance(value, str) and value and value != "-" and _is_path_key(key, section)
              and not (section == "" and key in LOADER_KEYS)):
            out[key] = str(config_dir / Path(value).expanduser())
        else:
            out[key] = value
    return out
