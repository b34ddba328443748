"""abook's Graph contacts backend (``GraphPimStore``) on a fresh mailbox of the Graph responder, with the
test controls the sync contract suite uses (another client's edits, lost delta states)."""

from __future__ import annotations

import uuid
from typing import Optional

from abook.config.mail import GraphApp
from abook.mailbox.pim.graph import GraphPimStore
from abook.mailbox.pim.schema import Values
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer


class GraphPimHarness(GraphPimStore):
    def __init__(self, server: GraphServer) -> None:
        self.responder = server.responder
        address = f"user-{uuid.uuid4().hex[:8]}@example.com"
        self.responder.add_mailbox(address)
        app = GraphApp.model_validate(dict(tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                           authority_host=self.responder.base, graph_url=self.responder.graph_url,
                                           max_retry_wait=2.0))
        super().__init__(app, address, ca_file=server.ca_file, timeout=10)

    def forget_tokens(self) -> None:
        self.responder.expire_delta(self.address)

    def user_update(self, entity: str, item_id: str, changes: Values, categories: Optional[tuple[str, ...]] = None) -> None:
        contact = self.responder.store.messages[item_id]
        with self.responder.lock:
            if categories is not None:
                contact.categories = list(categories)
                contact.change_key = uuid.uuid4().hex  # type: ignore[attr-defined]
                self.responder.store.touch(contact)
        if changes:
            etag = next(x.etag for x in self.changes_blocking(entity, None).changed if x.id == item_id)
            GraphPimStore.update_blocking(self, entity, item_id, etag, changes)

    def destroy(self) -> None:
        self.close_blocking()
