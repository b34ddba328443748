"""The regarding record shown in a real Radicale's events and to-dos (tests/unit/sync/test_regarding.py's
scenario), read as a third-party client reads them: the DESCRIPTION property."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import icalendar

from tests.contract.pim_harness import RadicaleMailbox
from tests.fixtures.radicale import Radicale
from tests.unit.sync.conftest import new_world
from tests.unit.sync.test_regarding import regarding_scenario


def _notes(box: Any, entity: str, item_id: str) -> str:
    text = box.http.get(box._url(entity, item_id)).text
    comp = next(c for c in icalendar.Calendar.from_ical(text).walk() if c.name in ("VEVENT", "VTODO"))
    return str(comp.get("description") or "")


def test_the_regarding_record_is_shown_in_caldav_items(radicale_server: Radicale, tmp_path: Path) -> None:
    w = new_world(tmp_path, mailboxes={"paul": RadicaleMailbox(radicale_server),
                                       "laura": RadicaleMailbox(radicale_server)})
    regarding_scenario(w, _notes)
    w.store.dispose()
