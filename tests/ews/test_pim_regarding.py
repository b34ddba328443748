"""The regarding record shown in Exchange calendar items and tasks, replayed (tests/unit/sync/test_regarding.py's
scenario), read as Outlook reads them: the item's body."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from abook.store import models
from tests.ews.pim_harness import EwsPimHarness
from tests.ews.pim_responder import PimResponder, _t
from tests.unit.sync.conftest import new_world
from tests.unit.sync.test_regarding import regarding_scenario


def _notes(box: Any, entity: str, item_id: str) -> str:
    element = box.responder.pim[item_id].element
    return (element.findtext(_t("Body")) or "").replace("\r\n", "\n")


def test_the_regarding_record_is_shown_in_exchange_items(ews_pim_responder: PimResponder, tmp_path: Path) -> None:
    boxes = {u: EwsPimHarness(ews_pim_responder) for u in ("paul", "laura")}
    w = new_world(tmp_path, mailboxes=boxes)
    with w.store.transaction() as s:
        for name, box in boxes.items():
            s.get(models.SystemUser, w.ids[name]).internalemailaddress = box.address
    regarding_scenario(w, _notes)
    w.store.dispose()
