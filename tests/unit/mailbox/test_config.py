"""The [[mailboxes]] options the backends read, and the POP3 cursor encoding."""

from __future__ import annotations

import pytest

from abook.config import parse_config
from abook.errors import ConfigError
from abook.mailbox.pop3 import decode_cursor, encode_cursor

EWS = {"service_endpoint": "https://mail.example.com/EWS/Exchange.asmx", "primary_smtp_address": "jane@example.com"}


def _mailbox(**values: object) -> dict:
    return {"mailboxes": [{"name": "jane", "type": "imap", "owner": "jane", **values}]}


def test_ews_defaults() -> None:
    config = parse_config(_mailbox(type="ews", ews=EWS))
    ews = config.mailboxes[0].ews
    assert ews is not None
    assert (ews.access_type, ews.auth_type, ews.tracked_property, ews.tracked_category) == (
        "impersonation", "ntlm", "crmLinkState", "Tracked to CRM")
    assert config.mailboxes[0].tracked_keyword == "$CRMTracked"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"type": "ews"}, 'mailboxes[0].ews: type "ews" needs a [mailboxes.ews] table'),
        ({"type": "imap", "ews": EWS}, 'mailboxes[0].ews: a [mailboxes.ews] table is only for type "ews", not \'imap\''),
        ({"type": "ews", "ews": {**EWS, "server_version": "2016"}},
         'mailboxes[0].ews.server_version: expected an Exchange build such as "15.1.2507.6"'),
        ({"type": "ews", "ews": {**EWS, "service_endpoint": "mail.example.com"}},
         "mailboxes[0].ews.service_endpoint: expected an http(s) URL"),
        ({"tracked_keyword": "\\Seen"}, "mailboxes[0].tracked_keyword: expected an IMAP keyword atom"),
        ({"tracked_keyword": "two words"}, "mailboxes[0].tracked_keyword: expected an IMAP keyword atom"),
        ({"timeout": 0}, "mailboxes[0].timeout: expected a number greater than 0"),
    ],
)
def test_bad_mailbox_options_name_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_config(_mailbox(**values), file="abook.toml")
    assert str(e.value).startswith("abook.toml: " + message), str(e.value)


def test_pop3_cursor_round_trip_and_size() -> None:
    digests = {bytes([i]) * 8 for i in range(100)}
    cursor = encode_cursor(digests)
    assert decode_cursor(cursor) == digests
    assert len(cursor) < 12 * len(digests)
    assert decode_cursor(encode_cursor(set())) == set()
