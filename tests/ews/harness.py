"""The contract-suite harness for the EWS backend, replayed: a fresh mailbox on the SOAP responder."""

from __future__ import annotations

import uuid
from typing import Any

from abook.config.mail import MailboxConfig
from abook.mailbox.interfaces import MessageRef
from tests.contract.harness import Harness
from tests.ews.responder import EwsResponder
from tests.fixtures.ews import SERVICE_PASSWORD, SERVICE_USER
from tests.helpers import free_port

PROPERTY = ("PublicStrings", "crmLinkState", "Integer")
CATEGORY = "Tracked to CRM"


class EwsHarness(Harness):
    def __init__(self, responder: EwsResponder) -> None:
        self.responder = responder
        self.address = f"user-{uuid.uuid4().hex[:8]}@example.com"
        responder.add_mailbox(self.address)

    def config(self, **overrides: Any) -> MailboxConfig:
        url = self.responder.url
        if "port" in overrides:  # a server that is not there
            url = f"http://127.0.0.1:{overrides.pop('port')}/EWS/Exchange.asmx"
            overrides.pop("host", None)
        values: dict[str, Any] = dict(
            name=f"ews-{self.address}", type="ews", username=SERVICE_USER, password=SERVICE_PASSWORD, timeout=10.0,
            ews=dict(service_endpoint=url, primary_smtp_address=self.address, access_type="impersonation",
                     auth_type="basic", server_version="15.1.2507.6", max_retry_wait=2.0),
        )
        ews = overrides.pop("ews", {})
        values.update(overrides)
        values["ews"] = {**values["ews"], **ews}
        return MailboxConfig.model_validate(values)

    def dead_config(self) -> MailboxConfig:
        return self.config(port=free_port())

    def deliver(self, message: bytes) -> None:
        self.responder.deliver(self.address, message)

    def expected(self, message: bytes) -> bytes:
        return message  # the responder returns the MIME content as delivered

    def _item(self, ref: MessageRef):  # type: ignore[no-untyped-def]
        return self.responder.items[ref.external_id]

    def is_unread(self, ref: MessageRef) -> bool:
        return not self._item(ref).is_read

    def is_tracked(self, ref: MessageRef) -> bool:
        item = self._item(ref)
        return item.extended.get(PROPERTY) == "1" and CATEGORY in item.categories

    def on_server(self, ref: MessageRef) -> bool:
        item = self.responder.items.get(ref.external_id)
        return item is not None and item.deleted is None
