"""Exchange tasks as abook's values and back (part of ``ews.EwsPimStore``). Exchange keeps a task's start
and due as dates, completed tasks at 100 %, and sets the date completed itself (when the status becomes
Completed), so that one is not synchronised. The regarding line is kept as for appointments
(``ews_common.notes``)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any, Optional

from exchangelib.ewsdatetime import EWSDate
from exchangelib.items import Task

from abook.mailbox.pim.ews_common import (
    ATTR,
    COMMON,
    IMPORTANCE,
    REGARDING_ATTR,
    EwsConnection,
    body_text,
    date_text,
    notes,
)
from abook.mailbox.pim.interfaces import Item
from abook.mailbox.pim.schema import Values, normalise, parse_moment, split_regarding

_STATUS_DONE = "Completed"


class EwsTasks:
    cls = Task
    only = COMMON + [REGARDING_ATTR, "subject", "body", "start_date", "due_date", "complete_date", "percent_complete",
                     "status", "importance"]

    def __init__(self, conn: EwsConnection) -> None:
        self._conn = conn

    def item(self, it: Any) -> Item:
        return Item(it.id, it.changekey, self.values(it), getattr(it, ATTR, None) or None, tuple(it.categories or ()))

    def values(self, it: Any) -> dict[str, Optional[str]]:
        percent = int(it.percent_complete) if it.percent_complete is not None else None
        done = it.status == _STATUS_DONE or percent == 100
        return normalise("task", {
            "subject": it.subject, "regarding": getattr(it, REGARDING_ATTR, None),
            "description": split_regarding(body_text(it.body), getattr(it, REGARDING_ATTR, None)),
            "startdate": date_text(it.start_date),
            "duedate": date_text(it.due_date), "completed": None,  # Exchange sets it itself: not synchronised
            "percentcomplete": 100 if done else percent, "status": "completed" if done else "open",
            "prioritycode": (it.importance or "Normal").lower(),
        })

    def project(self, out: dict[str, Optional[str]]) -> dict[str, Optional[str]]:
        out["completed"] = None
        for name in ("startdate", "duedate"):
            if out[name]:
                out[name] = out[name][:10]  # type: ignore[index]
        if out["status"] == "completed":
            out["percentcomplete"] = "100"
        elif out["percentcomplete"] is None:
            out["percentcomplete"] = "0"
        out["status"] = out["status"] or "open"
        out["prioritycode"] = out["prioritycode"] or "normal"
        return out

    def apply(self, item: Any, values: Values, creating: bool) -> list[str]:
        """Set ``values`` on an exchangelib task; the item fields to update."""
        fields = notes(item, values, creating, lambda: self.values(self._conn.refetch("task", item.id, self.only)))
        for name, attr in (("subject", "subject"),):
            if name in values:
                setattr(item, attr, values[name])
                fields.append(attr)
        for name, attr in (("startdate", "start_date"), ("duedate", "due_date")):
            if name in values:
                value = values[name]
                setattr(item, attr, EWSDate.from_date(_as_date(parse_moment(value))) if value else None)
                fields.append(attr)
        if "status" in values or "percentcomplete" in values:
            done = values.get("status") == "completed"
            percent = 100 if done else int(values.get("percentcomplete") or 0)
            item.percent_complete = Decimal(percent)
            item.status = _STATUS_DONE if done else ("InProgress" if percent else "NotStarted")
            fields += ["percent_complete", "status"]
        if values.get("prioritycode"):
            item.importance = IMPORTANCE[values["prioritycode"]]  # type: ignore[index]
            fields.append("importance")
        return list(dict.fromkeys(fields))


def _as_date(value: date | datetime) -> date:
    return value.date() if isinstance(value, datetime) else value
