"""The backend registry: config type -> class, imported lazily."""

from __future__ import annotations

import pytest

from abook.config.mail import MailboxConfig
from abook.mailbox.interfaces import IMailSource
from abook.mailbox.registry import BACKENDS, backend_class, open_source


@pytest.mark.parametrize("kind", sorted(BACKENDS))
def test_every_type_of_the_config_has_a_backend_providing_the_interface(kind: str) -> None:
    assert IMailSource.implementedBy(backend_class(kind))


def test_open_source_builds_without_connecting() -> None:
    source = open_source(MailboxConfig(name="j", type="imap", host="127.0.0.1", port=1, username="j", password="pw-4711"))
    assert IMailSource.providedBy(source)
    source.close_blocking()
    assert "pw-4711" not in repr(source)


def test_unknown_type() -> None:
    with pytest.raises(ValueError, match="unknown mailbox type 'maildir'"):
        backend_class("maildir")
