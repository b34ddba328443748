"""``auth = "upstream"`` never falls back to the local password hashes (review newcomer-2026-12-07, problem 4)."""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock

from abook.config.model import LdapConfig
from abook.directory.auth import Authenticator
from abook.errors import ConfigError
from abook.threads import SyncRunner


def test_an_authenticator_refuses_upstream_auth_without_an_upstream() -> None:
    """The config refuses it (tests/unit/config/test_what_cannot_work.py); a config built around the checks
    is refused too, where the daemon used to check the local hashes instead, silently."""
    config = LdapConfig.model_construct(auth="upstream", upstream=None)
    with pytest.raises(ConfigError) as e:
        Authenticator(None, SyncRunner(), Clock(), config)
    assert str(e.value) == 'ldap.upstream: auth = "upstream" needs an [ldap.upstream] table'
