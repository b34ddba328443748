"""abook's real EWS backend (``EwsPimStore``) on a fresh mailbox of the replay responder, with the test
controls the contract suite and the state machine use (another client's edits, failing calls, lost
sync states)."""

from __future__ import annotations

import uuid
import xml.etree.ElementTree as ET
from typing import Any, Optional

from abook.config.routing import EwsTemplate
from abook.mailbox.pim.ews import EwsPimStore
from abook.mailbox.pim.interfaces import Item
from abook.mailbox.pim.schema import Values
from tests.contract.recorded import RecordedCalls
from tests.ews.pim_responder import PimResponder, _t
from tests.fixtures.ews import SERVICE_PASSWORD, SERVICE_USER

FOLDER = {"contact": "contacts", "appointment": "calendar", "task": "tasks"}


class EwsPimHarness(RecordedCalls, EwsPimStore):
    def __init__(self, responder: PimResponder) -> None:
        self.responder = responder
        self.address = f"user-{uuid.uuid4().hex[:8]}@example.com"
        responder.add_mailbox(self.address)
        options = EwsTemplate.model_validate(dict(service_endpoint=responder.url, access_type="impersonation",
                                                  auth_type="basic", server_version="15.1.2507.6", max_retry_wait=2.0))
        super().__init__(options, self.address, SERVICE_USER, SERVICE_PASSWORD, timeout=10)
        self.start_recording()

    def forget_tokens(self) -> None:
        self.responder.forget_states()

    def user_update(self, entity: str, item_id: str, changes: Values, categories: Optional[tuple[str, ...]] = None) -> None:
        item = self.responder.pim[item_id]
        with self.responder._lock:
            if categories is not None:
                for old in item.element.findall(_t("Categories")):
                    item.element.remove(old)
                if categories:
                    cats = ET.SubElement(item.element, _t("Categories"))
                    for c in categories:
                        ET.SubElement(cats, _t("String")).text = c
            self.responder._touch(item)
        if changes:
            listed = EwsPimStore.changes_blocking(self, entity, None)
            etag = next(x.etag for x in listed.changed if x.id == item_id)
            EwsPimStore.update_blocking(self, entity, item_id, etag, changes)

    def user_create(self, entity: str, values: Values, categories: tuple[str, ...] = (), *,
                    crm_id: Optional[str] = None, uid: Optional[str] = None) -> str:
        if entity == "appointment":
            values = {**values, "uid": uid or values.get("uid") or f"{uuid.uuid4()}@mailbox"}
        listed = EwsPimStore.create_blocking(self, entity, values, crm_id or "")
        if categories:
            self.user_update(entity, listed.id, {}, categories)
        return listed.id

    def user_delete(self, entity: str, item_id: str) -> None:
        self.responder.user_delete(item_id)

    def touch(self, entity: str, item_id: str) -> None:
        self.responder.touch(item_id)

    def _all(self, entity: str) -> list[Item]:
        listed = EwsPimStore.changes_blocking(self, entity, None).changed
        return EwsPimStore.get_blocking(self, entity, [x.id for x in listed]) if listed else []

    @property
    def items(self) -> dict[str, dict[str, Any]]:
        from types import SimpleNamespace

        return {e: {i.id: SimpleNamespace(crm_id=i.crm_id, etag=i.etag) for i in self._all(e)}
                for e in ("contact", "appointment", "task")}

    def values(self, entity: str) -> dict[str, dict[str, Optional[str]]]:
        return {i.id: dict(i.values) for i in self._all(entity)}

    def destroy(self) -> None:
        self.close_blocking()

