"""The contract-suite harness for the Graph backend, replayed: a fresh mailbox on the Graph responder."""

from __future__ import annotations

import uuid
from typing import Any

from abook.config.mail import MailboxConfig
from abook.mailbox.graph import tracked_property_id
from abook.mailbox.interfaces import MessageRef
from tests.contract.harness import Harness
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer
from tests.helpers import free_port

CATEGORY = "Tracked to CRM"
PROPERTY = tracked_property_id("crmLinkState")


class GraphHarness(Harness):
    def __init__(self, server: GraphServer) -> None:
        self.server = server
        self.responder = server.responder
        self.address = f"user-{uuid.uuid4().hex[:8]}@example.com"
        self.responder.add_mailbox(self.address)

    def config(self, **overrides: Any) -> MailboxConfig:
        return MailboxConfig.model_validate(self.table(**overrides))

    def table(self, **overrides: Any) -> dict[str, Any]:
        """The ``[[mailboxes]]`` table, as a config file would give it."""
        r = self.responder
        values: dict[str, Any] = dict(
            name=f"graph-{self.address}", type="graph", ca_file=self.server.ca_file, timeout=10.0,
            graph=dict(tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, mailbox=self.address,
                       authority_host=r.base, graph_url=r.graph_url, max_retry_wait=2.0),
        )
        graph = overrides.pop("graph", {})
        values.update(overrides)
        values["graph"] = {**values["graph"], **graph}
        return values

    def dead_config(self) -> MailboxConfig:
        dead = f"https://127.0.0.1:{free_port()}"
        return self.config(graph={"authority_host": dead, "graph_url": dead + "/v1.0"})

    def wrong_password_config(self) -> MailboxConfig:
        return self.config(graph={"client_secret": "not-the-password"})

    def deliver(self, message: bytes) -> None:
        self.responder.deliver(self.address, message)

    def expected(self, message: bytes) -> bytes:
        return message  # the responder returns the MIME as delivered

    def _message(self, ref: MessageRef):  # type: ignore[no-untyped-def]
        return self.responder.store.messages[ref.external_id]

    def is_unread(self, ref: MessageRef) -> bool:
        return not self._message(ref).is_read

    def is_tracked(self, ref: MessageRef) -> bool:
        m = self._message(ref)
        return m.extended.get(PROPERTY) == "1" and CATEGORY in m.categories

    def on_server(self, ref: MessageRef) -> bool:
        m = self.responder.store.messages.get(ref.external_id)
        return m is not None and m.folder != "deleteditems"
