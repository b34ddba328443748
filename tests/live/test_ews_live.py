"""Opt-in: the EWS backend against a real Exchange, run only when tests/live/settings.toml exists.

The file is untracked (see settings.toml.sample). Without it, the module is skipped at collection:
the replay tests in tests/ews and tests/contract cover the same behaviour against the SOAP responder.
"""

from __future__ import annotations

import tomllib
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

from abook.config.mail import MailboxConfig
from abook.mailbox.registry import open_source

SETTINGS = Path(__file__).with_name("settings.toml")
pytestmark = pytest.mark.skipif(not SETTINGS.exists(), reason="no tests/live/settings.toml: live EWS tests opt-in")


@pytest.fixture(scope="module")
def settings() -> dict[str, Any]:
    return tomllib.loads(SETTINGS.read_text())


@pytest.fixture
def config(settings: dict[str, Any]) -> MailboxConfig:
    ews = {k: settings[k] for k in ("service_endpoint", "primary_smtp_address", "access_type", "auth_type",
                                     "server_version") if k in settings}
    return MailboxConfig.model_validate(dict(
        name="live", type="ews", username=settings["username"], password=settings["password"],
        ews={**ews, "tracked_property": "abookLiveTest", "tracked_category": "abook live test"},
    ))


@pytest.fixture
def source(config: MailboxConfig) -> Iterator[Any]:
    s = open_source(config)
    yield s
    s.close_blocking()


def _deliver(source: Any, subject: str) -> bytes:
    """Create a message in the Inbox through exchangelib itself (as exchangelib's own live tests do)."""
    from exchangelib import Message

    raw = (f"From: abook <abook@example.com>\r\nTo: test@example.com\r\nSubject: {subject}\r\n"
           f"Message-ID: <{uuid.uuid4().hex}@example.com>\r\n\r\nlive test\r\n").encode()
    folder = source._inbox()
    Message(account=folder.account, folder=folder, mime_content=raw, subject=subject).save()
    return raw


def test_changes_fetch_mark_and_remove(source: Any) -> None:
    cursor = source.changes_blocking(None, 512).cursor
    while True:  # catch up with whatever the mailbox holds
        batch = source.changes_blocking(cursor, 512)
        cursor = batch.cursor
        if not batch.more:
            break
    subject = f"abook live {uuid.uuid4().hex[:8]}"
    _deliver(source, subject)
    batch = source.changes_blocking(cursor, 10)
    assert len(batch.messages) == 1
    (ref,) = batch.messages
    raw = source.fetch_blocking(ref)
    assert subject.encode() in raw
    source.mark_tracked_blocking(ref)
    item = source._get(ref, ["categories"])
    assert "abook live test" in (item.categories or [])
    assert source.changes_blocking(batch.cursor, 10).messages == ()
    source.remove_blocking(ref)
