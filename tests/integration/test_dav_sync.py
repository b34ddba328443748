"""Sync against a real Radicale: a third-party DAV client (``caldav``, which abook does not use) sees what
abook wrote; times keep their zone and wall clock; the state machine runs here too, with fewer examples."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import caldav
import pytest
import vobject
from hypothesis import HealthCheck, settings

from tests.contract.pim_harness import RadicaleMailbox
from tests.fixtures.radicale import Radicale
from tests.unit.sync.conftest import new_world
from tests.unit.sync.machine import SyncMachine


def test_a_third_party_client_lists_what_abook_synced(radicale_server: Radicale, tmp_path: Path) -> None:
    box = RadicaleMailbox(radicale_server)
    w = new_world(tmp_path, mailboxes={"paul": box, "laura": RadicaleMailbox(radicale_server)})
    w.contact(firstname="Ann", lastname="Lee", emailaddress1="ann@example.org", telephone1="+49 30 1")
    w.contact(firstname="Bo", lastname="Berg", company="+49 30 9")
    start = datetime(2026, 7, 1, 9, 0, tzinfo=ZoneInfo("Europe/Berlin"))
    w.appointment(start=start.astimezone(timezone.utc), subject="Review", timezone="Europe/Berlin",
                  attendees=("laura",))
    w.task(subject="Send offer", scheduledend=datetime(2026, 7, 3, tzinfo=timezone.utc), alldayevent=True)
    reports = w.sync()
    assert all(r.error is None and not r.failed for r in reports.values())

    client = caldav.DAVClient(url=radicale_server.url, username=box.user, password=box._session.auth[1])
    calendars = {c.url.path: c for c in client.principal().calendars()}
    (event,) = calendars[_path(box.collections["appointment"])].events()
    vevent = event.icalendar_component
    assert str(vevent["summary"]) == "Review"
    assert vevent["dtstart"].dt == start and vevent["dtstart"].params["TZID"] == "Europe/Berlin"
    assert str(vevent["attendee"]) == "mailto:laura@example.com"
    (todo,) = calendars[_path(box.collections["task"])].todos()
    assert str(todo.icalendar_component["summary"]) == "Send offer"
    assert todo.icalendar_component["due"].dt.isoformat() == "2026-07-03"

    book = box.collections["contact"]
    listing = client.propfind(book, props='<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:getetag/>'
                              "</D:prop></D:propfind>", depth=1)
    hrefs = [h for h in listing.find_objects_and_props() if h.endswith(".vcf")]
    cards = [vobject.readOne(client.request(radicale_server.url + h).raw) for h in hrefs]
    assert sorted(c.fn.value for c in cards) == ["Ann Lee", "Bo Berg"]
    ann = next(c for c in cards if c.fn.value == "Ann Lee")
    assert ann.email.value == "ann@example.org" and ann.tel.value == "+49 30 1"
    assert ann.contents["x-abook-crmid"][0].value == w.links()[0].crm_id or \
        ann.contents["x-abook-crmid"][0].value == w.links()[1].crm_id
    w.store.dispose()


def _path(url: str) -> str:
    return "/" + url.split("://", 1)[1].split("/", 1)[1]


def test_a_series_keeps_its_wall_clock_time_across_dst_on_the_server(radicale_server: Radicale, tmp_path: Path) -> None:
    box = RadicaleMailbox(radicale_server)
    w = new_world(tmp_path, mailboxes={"paul": box, "laura": RadicaleMailbox(radicale_server)})
    tz = ZoneInfo("Europe/Berlin")
    starts = [datetime(2026, 3, 16, 9, 0, tzinfo=tz) + timedelta(weeks=i) for i in range(4)]  # DST on 29 March
    made = [w.appointment(start=s.astimezone(timezone.utc), seriesid="s1", originalstart=s, timezone="Europe/Berlin")
            for s in starts]
    w.sync(entities=("appointment",))
    texts = [box.http.get(box._url("appointment", i)).text for i in box.items["appointment"]]
    assert sorted(t.split("DTSTART;TZID=Europe/Berlin:")[1][:15] for t in texts) == \
        [s.strftime("%Y%m%dT090000") for s in starts]
    for item_id in box.items["appointment"]:
        box.user_update("appointment", item_id, {"location": "Room 2"})
    w.sync(entities=("appointment",))
    for aid, start in zip(made, starts):
        got = w.activity(aid)
        assert got.location == "Room 2" and got.scheduledstart == start.astimezone(timezone.utc)
    w.store.dispose()


class RadicaleSyncMachine(SyncMachine):
    server: Radicale = None  # type: ignore[assignment]
    make_mailbox = classmethod(lambda cls, user: RadicaleMailbox(cls.server))  # type: ignore[assignment]


RadicaleSyncMachine.TestCase.settings = settings(max_examples=10, stateful_step_count=20, deadline=None,
                                                 derandomize=True, database=None,  # replayable in CI: test_machine.py
                                                 suppress_health_check=list(HealthCheck))


@pytest.fixture
def radicale_machine(radicale_server: Radicale) -> type[RadicaleSyncMachine]:
    RadicaleSyncMachine.server = radicale_server
    return RadicaleSyncMachine


def test_sync_machine_on_radicale(radicale_machine: type[RadicaleSyncMachine]) -> None:
    radicale_machine.TestCase().runTest()
