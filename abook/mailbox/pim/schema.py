"""The mapped fields of contacts, appointments and tasks, and their one canonical text form.

The CRM side (``abook/sync/crm.py``) and every mailbox backend convert their own records to and from
``Values``: a dict of field name -> canonical text (or None). The sync engine compares, hashes and
merges only these. Each field's canonical form is a fixed point of its normaliser, so converting twice
gives what converting once gave (docs/sync.md invariant 6):

* ``text``: stripped, CR and CRLF as LF, empty -> None; ``body``: plain text (CRLF -> LF, trailing blanks per line and
  blank lines at either end removed; HTML is turned into text by the backend that receives it);
* ``email``: stripped; ``int``: decimal digits; ``choice``: one of the field's choices;
* ``date``: ``YYYY-MM-DD``; ``moment``: a date, or a UTC time ``YYYY-MM-DDTHH:MM:SSZ`` (seconds);
* ``when``: start and end as one value (docs/sync.md section 2): ``D/D`` (all-day, end exclusive) or ``T/T``;
* ``parties``: ``role:address`` items (role required or optional), sorted, ``;``-separated, addresses
  lowercased.

Default directions follow docs/sync.md section 2; ``[sync.directions.<entity>]`` overrides them per field.

``regarding`` (appointments, tasks): the name of the CRM record the activity is about, shown in the mailbox
item (``REGARDING_LINE`` at the end of the notes, plus a property of abook's that says which line is its
own) and never read back into the CRM (CRM -> mailbox only). ``with_regarding`` / ``split_regarding``
write and read that line, so the notes round-trip without it: a fixed point, no sync loop.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Mapping, Optional

Values = Mapping[str, Optional[str]]

#: meta keys kept beside the mapped values in a link's snapshot (never hashed, compared or written)
META_PREFIX = "__"


@dataclass(frozen=True)
class FieldDef:
    name: str
    kind: str = "text"
    direction: str = "both"
    choices: tuple[str, ...] = ()


def _f(name: str, kind: str = "text", direction: str = "both", choices: tuple[str, ...] = ()) -> FieldDef:
    return FieldDef(name, kind, direction, choices)


PRIORITIES = ("low", "normal", "high")

CONTACT_FIELDS = (
    _f("fullname", direction="to_mailbox"),
    _f("firstname"), _f("middlename"), _f("lastname"), _f("nickname"),
    _f("jobtitle"), _f("department"),
    _f("company_name", direction="to_mailbox"),  # the parent account's name
    _f("telephone1"), _f("business2"), _f("company"), _f("fax"), _f("mobilephone"), _f("telephone2"),
    _f("home2"), _f("telephone3"), _f("pager"), _f("assistantname"), _f("assistantphone"), _f("managername"),
    _f("emailaddress1", "email"), _f("emailaddress2", "email"), _f("emailaddress3", "email"),
    _f("address1_street", "body"), _f("address1_city"), _f("address1_stateorprovince"), _f("address1_postalcode"),
    _f("address1_country"),
    _f("websiteurl"), _f("description", "body"),
    _f("birthdate", "date"), _f("anniversary", "date"), _f("spousesname"), _f("childrensnames"),
)

APPOINTMENT_FIELDS = (
    _f("when", "when"), _f("timezone"), _f("subject"), _f("location"), _f("description", "body"),
    _f("prioritycode", "choice", "fixed", PRIORITIES),
    _f("organizer", "email", "fixed"), _f("attendees", "parties", "fixed"),
    _f("showas", "choice", "to_mailbox", ("free", "busy")),
    _f("uid", "text", "fixed"),
    _f("regarding", "text", "to_mailbox"),
)

TASK_FIELDS = (
    _f("subject"), _f("startdate", "moment"), _f("duedate", "moment"), _f("completed", "moment"),
    _f("percentcomplete", "int"), _f("status", "choice", "both", ("open", "completed")),
    _f("prioritycode", "choice", "both", PRIORITIES), _f("description", "body"),
    _f("regarding", "text", "to_mailbox"),
)

FIELDS: dict[str, tuple[FieldDef, ...]] = {
    "contact": CONTACT_FIELDS, "appointment": APPOINTMENT_FIELDS, "task": TASK_FIELDS,
}
BY_NAME: dict[str, dict[str, FieldDef]] = {e: {f.name: f for f in fs} for e, fs in FIELDS.items()}


# ---------------------------------------------------------------------------------------------------------
# Canonical forms


def utc_text(t: datetime) -> str:
    if t.tzinfo is None:
        raise ValueError(f"a naive time {t!r} has no place in canonical values")
    return t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)


def is_date(text: str) -> bool:
    return len(text) == 10


def parse_moment(text: str) -> date | datetime:
    return date.fromisoformat(text) if is_date(text) else parse_utc(text)


def moment_text(value: date | datetime | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return utc_text(value)
    return value.isoformat()


def when_text(start: date | datetime, end: date | datetime) -> str:
    """``when`` of an all-day item (dates, end exclusive) or a timed one (aware times)."""
    if isinstance(start, datetime) != isinstance(end, datetime):
        raise ValueError("an item's start and end are both dates or both times")
    return f"{moment_text(start)}/{moment_text(end)}"


def parse_when(text: str) -> tuple[date | datetime, date | datetime]:
    start, _, end = text.partition("/")
    return parse_moment(start), parse_moment(end)


_TRAILING = re.compile(r"[ \t]+\n")


def plain_body(text: str | None) -> str | None:
    if text is None:
        return None
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\xa0", " ")
    text = _TRAILING.sub("\n", text + "\n").strip("\n")
    return text.rstrip() or None


def parties_text(items: list[tuple[str, str]]) -> str | None:
    clean = sorted({(role, address.strip().lower()) for role, address in items if address and address.strip()})
    return ";".join(f"{role}:{address}" for role, address in clean) or None


def parse_parties(text: str | None) -> list[tuple[str, str]]:
    if not text:
        return []
    return [tuple(item.split(":", 1)) for item in text.split(";")]  # type: ignore[misc]


def normalise(entity: str, values: Mapping[str, object]) -> dict[str, Optional[str]]:
    """Every field of ``entity`` in canonical form (absent -> None); unknown keys are dropped."""
    out: dict[str, Optional[str]] = {}
    for f in FIELDS[entity]:
        out[f.name] = _normalise(f, values.get(f.name))
    return out


def _normalise(f: FieldDef, value: object) -> Optional[str]:
    if value is None:
        return None
    if f.kind == "body":
        return plain_body(str(value))
    if f.kind == "date":
        if isinstance(value, datetime):
            value = value.date()
        return value.isoformat() if isinstance(value, date) else (str(value).strip() or None)
    if f.kind == "moment":
        if isinstance(value, (date, datetime)):
            return moment_text(value)
        return str(value).strip() or None
    if f.kind == "int":
        text = str(value).strip()
        return str(int(text)) if text else None
    if f.kind == "parties":
        return str(value) or None
    if f.kind == "choice":
        text = str(value).strip().lower()
        return text if text in f.choices else None
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()  # no format keeps a bare CR
    return text or None


REGARDING_LINE = "Regarding: {}"


def with_regarding(description: Optional[str], regarding: Optional[str]) -> Optional[str]:
    """The notes as the mailbox shows them: the description, then a line naming the regarding record."""
    if not regarding:
        return description
    line = REGARDING_LINE.format(regarding)
    return f"{description}\n\n{line}" if description else line


def split_regarding(text: Optional[str], regarding: Optional[str]) -> Optional[str]:
    """The description without abook's regarding line (``regarding``: the name abook's property holds; the line
    is removed only when it is that name's, so a line the user wrote stays theirs)."""
    body = plain_body(text)
    if not regarding or body is None:
        return body
    line = REGARDING_LINE.format(plain_body(regarding))
    if body == line:
        return None
    if body.endswith("\n" + line):
        return plain_body(body[: -len(line)])
    return body


def mapped(values: Mapping[str, Optional[str]]) -> dict[str, Optional[str]]:
    """The values without snapshot meta keys."""
    return {k: v for k, v in values.items() if not k.startswith(META_PREFIX)}


def value_hash(values: Mapping[str, Optional[str]]) -> str:
    """A hash of the mapped values (meta keys left out): equal values, equal hash, on every side."""
    text = json.dumps(mapped(values), sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]
