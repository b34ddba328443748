"""From a message's addresses to email parties: every address, every matching CRM record.

Addresses are compared case-insensitively. Each address is looked up under a few spellings, so that an
IDN domain matches whether the store or the message spells it in Unicode or in ``xn--`` form, a quoted
local part that needs no quoting (``"jane"@x``) matches the plain address, and an address with non-ASCII
capitals matches on SQLite, whose ``lower()`` folds ASCII only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from abook.store.enums import ParticipationType
from abook.store.tracking import NewParty
from abook.tracking.parse import Address

MASKS = {
    "from": ParticipationType.sender,
    "to": ParticipationType.to,
    "cc": ParticipationType.cc,
    "bcc": ParticipationType.bcc,
}

_DOT_ATOM = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")


def _ascii_lower(text: str) -> str:
    if text.isascii():
        return text.lower()
    return "".join(c.lower() if c < "\x80" else c for c in text)


def spellings(address: str) -> list[str]:
    """The lowercased forms under which ``address`` may be stored, canonical form first."""
    address = address.strip().strip("<>")
    lowered = address.lower()
    if address.isascii() and '"' not in address and "xn--" not in lowered:
        return [lowered]  # the common case: one spelling
    local, at, domain = address.rpartition("@")
    if not at:
        return [address.lower()]
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        unquoted = local[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        locals_ = [unquoted, local] if _DOT_ATOM.match(unquoted) else [local]
    else:
        locals_ = [local]
    domains = [domain]
    try:
        if domain.isascii() and "xn--" in domain.lower():
            domains.append(domain.encode("ascii").decode("idna"))
        elif not domain.isascii():
            domains.append(domain.encode("idna").decode("ascii"))
    except UnicodeError:
        pass
    out: list[str] = []
    for lp in locals_:
        for d in domains:
            for form in (f"{lp}@{d}".lower(), _ascii_lower(f"{lp}@{d}")):
                if form not in out:
                    out.append(form)
    return out


@dataclass(frozen=True)
class Resolution:
    parties: tuple[NewParty, ...]
    #: the records the sender (From) resolved to
    sender_records: tuple[tuple[str, str], ...]
    #: records matched by the recipients (To, Cc, Bcc)
    recipient_records: tuple[tuple[str, str], ...]


def lookup_keys(addresses: tuple[Address, ...], outgoing: bool) -> list[str]:
    keys: list[str] = []
    for header, _name, address in addresses:
        if header == "bcc" and not outgoing:
            continue
        keys.extend(spellings(address))
    return keys


def build_parties(addresses: tuple[Address, ...], outgoing: bool,
                  found: dict[str, list[tuple[str, str]]]) -> Resolution:
    """One party per (address, matching record); one unresolved party per address matching nothing."""
    parties: list[NewParty] = []
    sender: list[tuple[str, str]] = []
    recipients: list[tuple[str, str]] = []
    seen: set[tuple[int, str]] = set()
    first_from = True
    for header, name, address in addresses:
        if header == "bcc" and not outgoing:
            continue
        mask = int(MASKS[header])
        forms = spellings(address)
        if (mask, forms[0]) in seen:  # the same address twice in one header field kind
            continue
        seen.add((mask, forms[0]))
        records: list[tuple[str, str]] = []
        for form in forms:
            for record in found.get(form, ()):
                if record not in records:
                    records.append(record)
        if header == "from" and first_from:
            sender, first_from = records, False
        elif header != "from":
            recipients.extend(r for r in records if r not in recipients)
        if not records:
            parties.append(NewParty(mask, address, name or None))
        for entity, record_id in records:
            parties.append(NewParty(mask, address, name or None, entity, record_id))
    return Resolution(tuple(parties), tuple(sender), tuple(recipients))
