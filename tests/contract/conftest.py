"""The ``mail_backend`` fixture: every IMailSource backend, each with a fresh, empty mailbox."""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.contract.harness import DovecotHarness, Harness

BACKENDS = [
    pytest.param(("imap", "none"), id="imap-plain"),
    pytest.param(("imap", "tls"), id="imap-tls"),
    pytest.param(("imap", "starttls"), id="imap-starttls"),
    pytest.param(("pop3", "none"), id="pop3-plain"),
    pytest.param(("pop3", "tls"), id="pop3-tls"),
    pytest.param(("pop3", "starttls"), id="pop3-stls"),
    pytest.param(("ews", "replay"), id="ews-replay"),
    pytest.param(("graph", "replay"), id="graph-replay"),
]


@pytest.fixture(params=BACKENDS)
def mail_backend(request: pytest.FixtureRequest) -> Iterator[Harness]:
    kind, security = request.param
    if kind == "ews":
        from tests.ews.harness import EwsHarness

        harness: Harness = EwsHarness(request.getfixturevalue("ews_responder"))
    elif kind == "graph":
        from tests.graph.harness import GraphHarness

        harness = GraphHarness(request.getfixturevalue("graph_server"))
    else:
        harness = DovecotHarness(request.getfixturevalue("dovecot_server"), kind, security)
    yield harness
