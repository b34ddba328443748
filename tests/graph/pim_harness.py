"""abook's Graph contacts backend (``GraphPimStore``) on a fresh mailbox of the Graph responder, with the
test controls the sync contract suite uses (another client's edits, lost delta states)."""

from __future__ import annotations

import uuid
from types import SimpleNamespace
from typing import Any, Optional

from abook.config.mail import GraphApp
from abook.mailbox.pim.graph import GraphPimStore
from abook.mailbox.pim.interfaces import Item
from abook.mailbox.pim.schema import Values
from tests.contract.recorded import RecordedCalls
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


class RecordedGraphPim(RecordedCalls, GraphPimHarness):
    """The harness with abook's calls recorded and made to fail on demand, for the sync state machine."""

    def __init__(self, server: GraphServer) -> None:
        super().__init__(server)
        self.start_recording()

    # -- another client (Outlook) on the same mailbox, past abook's recorded calls

    def user_create(self, entity: str, values: Values, categories: tuple[str, ...] = (), *,
                    crm_id: Optional[str] = None, uid: Optional[str] = None) -> str:
        listed = GraphPimStore.create_blocking(self, entity, values, crm_id or "")
        if categories:
            self.user_update(entity, listed.id, {}, categories)
        return listed.id

    def user_update(self, entity: str, item_id: str, changes: Values, categories: Optional[tuple[str, ...]] = None) -> None:
        if categories is not None:
            super().user_update(entity, item_id, {}, categories)
        if changes:
            etag = self.responder.store.messages[item_id].etag  # type: ignore[attr-defined]
            GraphPimStore.update_blocking(self, entity, item_id, etag, changes)

    def user_delete(self, entity: str, item_id: str) -> None:
        with self.responder.lock:
            store = self.responder.store
            contact = store.messages[item_id]
            contact.deleted, contact.folder = True, "deleteditems"
            store.tombstones.append((self.address, "contacts", item_id, store.tick()))

    def touch(self, entity: str, item_id: str) -> None:
        """An edit of a field abook does not map (a new change key, a place in the next delta)."""
        with self.responder.lock:
            contact = self.responder.store.messages[item_id]
            contact.change_key = uuid.uuid4().hex  # type: ignore[attr-defined]
            self.responder.store.touch(contact)

    def _all(self) -> list[Item]:
        ids = [c.id for c in self.responder.store.in_folder(self.address, "contacts")]  # in creation order
        return GraphPimStore.get_blocking(self, "contact", ids) if ids else []

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return {"contact": {i.id: SimpleNamespace(crm_id=i.crm_id, etag=i.etag) for i in self._all()},
                "appointment": {}, "task": {}}

    def values(self, entity: str) -> dict[str, dict[str, Optional[str]]]:
        return {i.id: dict(i.values) for i in self._all()} if entity == "contact" else {}
