"""abook's Graph backend (``GraphPimStore``: contacts, events, To Do tasks) on a fresh mailbox of the Graph
responder, with the test controls the sync contract suite uses (another client's edits, lost delta states).
Its clock stands at 2026-03-01, so the calendar window covers the contract samples whenever the tests run."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from types import SimpleNamespace
from typing import Any, Callable, Optional

from abook.config.mail import GraphApp
from abook.mailbox.pim.graph import GraphPimStore
from abook.mailbox.pim.interfaces import Item
from abook.mailbox.pim.schema import Values
from tests.contract.recorded import RecordedCalls
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer


CLOCK = datetime(2026, 3, 1, 12, tzinfo=timezone.utc)


def resource_of(responder: Any, entity: str, item_id: str) -> Any:
    """The responder's own record of a contact, event (series master) or task."""
    from tests.graph.event_routes import events
    from tests.graph.todo_routes import tasks

    if entity == "contact":
        return responder.store.messages[item_id]
    return (events(responder) if entity == "appointment" else tasks(responder))[item_id.partition("_OCC")[0]]


class GraphPimHarness(GraphPimStore):
    def __init__(self, server: GraphServer, clock: Callable[[], datetime] = lambda: CLOCK) -> None:
        self.responder = server.responder
        address = f"user-{uuid.uuid4().hex[:8]}@example.com"
        self.responder.add_mailbox(address)
        app = GraphApp.model_validate(dict(tenant=TENANT, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                                           authority_host=self.responder.base, graph_url=self.responder.graph_url,
                                           max_retry_wait=2.0))
        super().__init__(app, address, ca_file=server.ca_file, timeout=10, clock=clock)

    def forget_tokens(self) -> None:
        self.responder.expire_delta(self.address)

    def user_update(self, entity: str, item_id: str, changes: Values, categories: Optional[tuple[str, ...]] = None) -> None:
        item = resource_of(self.responder, entity, item_id)
        with self.responder.lock:
            if categories is not None:
                if entity == "contact":
                    item.categories = list(categories)
                else:
                    item.data["categories"] = list(categories)
                item.change_key = uuid.uuid4().hex
                item.seq = self.responder.store.tick()
        if changes:
            GraphPimStore.update_blocking(self, entity, item_id, item.etag, changes)

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
        if entity == "appointment" and uid:  # a meeting's copy from its organiser's server: that iCalUId
            with self.responder.lock:
                resource_of(self.responder, entity, listed.id).uid = uid
        if categories:
            self.user_update(entity, listed.id, {}, categories)
        return listed.id

    def user_update(self, entity: str, item_id: str, changes: Values, categories: Optional[tuple[str, ...]] = None) -> None:
        if categories is not None:
            super().user_update(entity, item_id, {}, categories)
        if changes:
            etag = resource_of(self.responder, entity, item_id).etag
            GraphPimStore.update_blocking(self, entity, item_id, etag, changes)

    def user_delete(self, entity: str, item_id: str) -> None:
        with self.responder.lock:
            store = self.responder.store
            item = resource_of(self.responder, entity, item_id)
            item.deleted = True
            if entity == "contact":
                item.folder = "deleteditems"
                store.tombstones.append((self.address, "contacts", item_id, store.tick()))
            else:
                store.tick()

    def touch(self, entity: str, item_id: str) -> None:
        """An edit of a field abook does not map (a new change key, a place in the next delta)."""
        with self.responder.lock:
            item = resource_of(self.responder, entity, item_id)
            item.change_key = uuid.uuid4().hex
            item.seq = self.responder.store.tick()

    def _all(self, entity: str = "contact") -> list[Item]:
        from tests.graph.event_routes import events
        from tests.graph.todo_routes import tasks

        if entity == "contact":
            ids = [c.id for c in self.responder.store.in_folder(self.address, "contacts")]  # in creation order
        elif entity == "appointment":
            ids = [e.id for e in events(self.responder).values() if e.mailbox == self.address and not e.deleted]
        else:
            ids = [t.id for t in tasks(self.responder).values() if t.mailbox.startswith(self.address + "|")
                   and not t.deleted]
        return GraphPimStore.get_blocking(self, entity, ids) if ids else []

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        return {e: {i.id: SimpleNamespace(crm_id=i.crm_id, etag=i.etag) for i in self._all(e)}
                for e in ("contact", "appointment", "task")}

    def values(self, entity: str) -> dict[str, dict[str, Optional[str]]]:
        return {i.id: dict(i.values) for i in self._all(entity)}
