"""The twistd plugin: its description says what abook does (not the Exchange sync it does not have), and the
cache Twisted writes beside it when it scans for plugins is not part of the repository."""

from __future__ import annotations

import runpy

from tests.helpers import REPO
from tests.test_standalone import tracked_files


def test_plugin_description_names_what_is_built() -> None:
    maker = runpy.run_path(str(REPO / "twisted" / "plugins" / "abook_plugin.py"))["abook"]
    assert maker.description == "CRM address books over LDAP, email tracking and routing"
    assert "sync" not in maker.description.lower()


def test_twisted_plugin_cache_is_not_tracked() -> None:
    assert "twisted/plugins/dropin.cache" not in tracked_files()
    assert "twisted/plugins/dropin.cache" in (REPO / ".gitignore").read_text().splitlines()
