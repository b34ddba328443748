"""vCard 3.0 <-> canonical contact values, through ``vobject`` (no hand-written parsing).

Writing keeps what abook does not map: the existing card is parsed, abook's properties are replaced and
the rest (photos, other clients' X- properties) stay. Phone numbers are told apart by their TYPE
parameters (vCard 3 has no "company", "assistant" or "other" phone: those get X- types); cards from other
clients are read by the usual types (CELL, HOME, WORK, FAX, PAGER).
"""

from __future__ import annotations

from typing import Optional

import vobject

from abook.mailbox.pim.interfaces import CRMID_PROPERTY
from abook.mailbox.pim.schema import Values, normalise

#: field -> the TEL types abook writes
PHONES: dict[str, tuple[str, ...]] = {
    "telephone1": ("WORK", "VOICE"),
    "business2": ("WORK", "VOICE", "X-SECOND"),
    "company": ("X-COMPANY",),
    "fax": ("WORK", "FAX"),
    "mobilephone": ("CELL", "VOICE"),
    "telephone2": ("HOME", "VOICE"),
    "home2": ("HOME", "VOICE", "X-SECOND"),
    "telephone3": ("X-OTHER",),
    "pager": ("PAGER",),
    "assistantphone": ("X-ASSISTANT",),
}
#: field -> a text property of its own
TEXTS = {"nickname": "nickname", "jobtitle": "title", "websiteurl": "url", "description": "note",
         "assistantname": "x-assistant", "managername": "x-manager", "spousesname": "x-spouse",
         "childrensnames": "x-children", "anniversary": "x-anniversary", "birthdate": "bday"}
#: the properties abook rewrites (categories and the CRM id are kept unless abook sets them)
_MAPPED = {"fn", "n", "org", "tel", "email", "adr", *TEXTS.values()}


def _phone_field(types: set[str], taken: set[str]) -> Optional[str]:
    for field, wanted in PHONES.items():  # abook's own exact type sets first
        if types == {t.lower() for t in wanted} and field not in taken:
            return field
    order: list[str]
    if "x-company" in types:
        order = ["company"]
    elif "x-assistant" in types:
        order = ["assistantphone"]
    elif "x-other" in types or "other" in types:
        order = ["telephone3"]
    elif "fax" in types:
        order = ["fax"]
    elif "pager" in types:
        order = ["pager"]
    elif "cell" in types:
        order = ["mobilephone"]
    elif "home" in types:
        order = ["telephone2", "home2"]
    else:
        order = ["telephone1", "business2", "telephone3"]
    return next((f for f in order if f not in taken), None)


def _types(line: vobject.base.ContentLine) -> set[str]:
    out: set[str] = set()
    for value in line.params.get("TYPE", []):
        out |= {t.strip().lower() for t in value.split(",") if t.strip()}
    return out


def read_card(text: str) -> tuple[dict[str, Optional[str]], Optional[str], tuple[str, ...], Optional[str]]:
    """(canonical values, CRM id, categories, UID) of a vCard."""
    card = vobject.readOne(text)
    values: dict[str, object] = {}
    contents = card.contents
    if "fn" in contents:
        values["fullname"] = contents["fn"][0].value
    if "n" in contents:
        n = contents["n"][0].value
        values.update(lastname=n.family or None, firstname=n.given or None, middlename=n.additional or None)
    if "org" in contents:
        org = contents["org"][0].value
        org = org if isinstance(org, list) else [org]
        values["company_name"] = org[0] if org else None
        values["department"] = org[1] if len(org) > 1 else None
    taken: set[str] = set()
    for line in contents.get("tel", []):
        field = _phone_field(_types(line), taken)
        if field is not None:
            taken.add(field)
            values[field] = line.value
    free = [1, 2, 3]
    lines = contents.get("email", [])
    for line in lines:  # abook marks each address with its slot; others fill the free slots in order
        slot = (line.params.get("X-ABOOK-SLOT") or [""])[0]
        if slot in ("1", "2", "3") and int(slot) in free:
            free.remove(int(slot))
            values[f"emailaddress{slot}"] = line.value
    for line in lines:
        if (line.params.get("X-ABOOK-SLOT") or [""])[0] not in ("1", "2", "3") and free:
            values[f"emailaddress{free.pop(0)}"] = line.value
    adrs = contents.get("adr", [])
    if adrs:
        work = next((a for a in adrs if "work" in _types(a)), adrs[0])
        a = work.value
        values.update(address1_street=a.street if isinstance(a.street, str) else "\n".join(a.street),
                      address1_city=a.city, address1_stateorprovince=a.region, address1_postalcode=a.code,
                      address1_country=a.country)
    for field, prop in TEXTS.items():
        if prop in contents:
            value = contents[prop][0].value
            values[field] = value[:10] if field in ("birthdate", "anniversary") and value else value
    categories: list[str] = []
    for line in contents.get("categories", []):
        categories += [c.strip() for c in (line.value if isinstance(line.value, list) else [line.value]) if c.strip()]
    crm_id = contents[CRMID_PROPERTY.lower()][0].value if CRMID_PROPERTY.lower() in contents else None
    uid = contents["uid"][0].value if "uid" in contents else None
    return normalise("contact", values), crm_id, tuple(categories), uid


def write_card(values: Values, *, uid: str, crm_id: Optional[str], base: Optional[str] = None) -> str:
    """A vCard 3.0 with ``values`` (None clears a field); ``base``: the card to change (unmapped parts stay)."""
    if base is not None:
        card = vobject.readOne(base)
        current = read_card(base)[0]
        merged = {**current, **values}
        for name in list(card.contents):
            if name in _MAPPED:
                del card.contents[name]
    else:
        card = vobject.vCard()
        card.add("version").value = "3.0"
        card.add("uid").value = uid
        merged = dict(values)
    v = normalise("contact", merged)
    names = [v.get("firstname"), v.get("middlename"), v.get("lastname")]
    full = v.get("fullname") or " ".join(n for n in names if n) or v.get("emailaddress1") or "?"
    card.add("fn").value = full
    card.add("n").value = vobject.vcard.Name(family=v.get("lastname") or "", given=v.get("firstname") or "",
                                             additional=v.get("middlename") or "")
    if v.get("company_name") or v.get("department"):
        card.add("org").value = [v.get("company_name") or "", *([v["department"]] if v.get("department") else [])]
    for field, types in PHONES.items():
        if v.get(field):
            line = card.add("tel")
            line.value = v[field]
            line.type_paramlist = list(types)
    for i in (1, 2, 3):
        if v.get(f"emailaddress{i}"):
            line = card.add("email")
            line.value = v[f"emailaddress{i}"]
            line.type_paramlist = ["INTERNET"] + (["PREF"] if i == 1 else [])
            line.params["X-ABOOK-SLOT"] = [str(i)]
    if any(v.get(f) for f in ("address1_street", "address1_city", "address1_stateorprovince", "address1_postalcode",
                              "address1_country")):
        line = card.add("adr")
        line.value = vobject.vcard.Address(street=v.get("address1_street") or "", city=v.get("address1_city") or "",
                                           region=v.get("address1_stateorprovince") or "",
                                           code=v.get("address1_postalcode") or "", country=v.get("address1_country") or "")
        line.type_paramlist = ["WORK"]
    for field, prop in TEXTS.items():
        if v.get(field):
            card.add(prop).value = v[field]
    if crm_id:
        card.contents.pop(CRMID_PROPERTY.lower(), None)
        card.add(CRMID_PROPERTY.lower()).value = crm_id
    return card.serialize()


def with_crm_id(text: str, crm_id: str) -> str:
    card = vobject.readOne(text)
    card.contents.pop(CRMID_PROPERTY.lower(), None)
    card.add(CRMID_PROPERTY.lower()).value = crm_id
    return card.serialize()
