"""Exchange contacts as abook's values and back (part of ``ews.EwsPimStore``): Exchange's own fields, the
phone numbers, e-mail addresses and business address as its indexed properties."""

from __future__ import annotations

from typing import Any, Optional

from exchangelib.ewsdatetime import EWSDate
from exchangelib.indexed_properties import EmailAddress, PhoneNumber, PhysicalAddress
from exchangelib.items import Contact

from abook.mailbox.pim.ews_common import ATTR, COMMON, EwsConnection, body_text, date_text
from abook.mailbox.pim.interfaces import Item
from abook.mailbox.pim.schema import Values, normalise

PHONES = {"telephone1": "BusinessPhone", "business2": "BusinessPhone2", "company": "CompanyMainPhone",
          "fax": "BusinessFax", "mobilephone": "MobilePhone", "telephone2": "HomePhone", "home2": "HomePhone2",
          "telephone3": "OtherTelephone", "pager": "Pager", "assistantphone": "AssistantPhone"}
CONTACT_TEXT = {"fullname": "display_name", "firstname": "given_name", "middlename": "middle_name",
                "lastname": "surname", "nickname": "nickname", "jobtitle": "job_title", "department": "department",
                "company_name": "company_name", "assistantname": "assistant_name", "managername": "manager",
                "spousesname": "spouse_name", "websiteurl": "business_homepage"}
_ADDRESS = ("address1_street", "address1_city", "address1_stateorprovince", "address1_postalcode",
            "address1_country")


class EwsContacts:
    cls = Contact
    only = COMMON + list(CONTACT_TEXT.values()) + ["phone_numbers", "email_addresses", "physical_addresses",
                                                   "body", "birthday", "wedding_anniversary", "children"]

    def __init__(self, conn: EwsConnection) -> None:
        self._conn = conn

    def item(self, it: Any) -> Item:
        return Item(it.id, it.changekey, self.values(it), getattr(it, ATTR, None) or None, tuple(it.categories or ()))

    def values(self, it: Any) -> dict[str, Optional[str]]:
        v: dict[str, object] = {name: getattr(it, attr, None) for name, attr in CONTACT_TEXT.items()}
        phones = {p.label: p.phone_number for p in (it.phone_numbers or [])}
        for name, label in PHONES.items():
            v[name] = phones.get(label)
        emails = {e.label: e.email for e in (it.email_addresses or [])}
        for i in (1, 2, 3):
            v[f"emailaddress{i}"] = emails.get(f"EmailAddress{i}")
        business = next((a for a in (it.physical_addresses or []) if a.label == "Business"), None)
        if business is not None:
            v.update(address1_street=business.street, address1_city=business.city,
                     address1_stateorprovince=business.state, address1_postalcode=business.zipcode,
                     address1_country=business.country)
        v["description"] = body_text(it.body)
        v["birthdate"] = date_text(it.birthday)
        v["anniversary"] = date_text(it.wedding_anniversary)
        v["childrensnames"] = "; ".join(it.children) if it.children else None
        return normalise("contact", v)

    def project(self, out: dict[str, Optional[str]]) -> dict[str, Optional[str]]:
        if not out["fullname"]:  # as apply names a new contact
            names = [out.get("firstname"), out.get("middlename"), out.get("lastname")]
            out["fullname"] = " ".join(n for n in names if n) or out.get("emailaddress1") or "?"
        return out

    def apply(self, item: Any, values: Values, creating: bool) -> list[str]:
        """Set ``values`` on an exchangelib contact; the item fields to update. An indexed property is
        written whole: its entries not in ``values`` are read from the contact first."""
        fields: list[str] = []
        current = {}
        for name, attr in CONTACT_TEXT.items():
            if name in values:
                setattr(item, attr, values[name])
                fields.append(attr)
        if any(n in values for n in PHONES):
            if not creating:
                current = self._current(item)
            merged = {n: values.get(n, current.get(n)) for n in PHONES}
            item.phone_numbers = [PhoneNumber(label=PHONES[n], phone_number=v) for n, v in merged.items() if v] or None
            fields.append("phone_numbers")
        if any(f"emailaddress{i}" in values for i in (1, 2, 3)):
            if not creating and not current:
                current = self._current(item)
            merged = {i: values.get(f"emailaddress{i}", current.get(f"emailaddress{i}")) for i in (1, 2, 3)}
            item.email_addresses = [EmailAddress(label=f"EmailAddress{i}", email=v) for i, v in merged.items() if v] \
                or None
            fields.append("email_addresses")
        if any(n in values for n in _ADDRESS):
            if not creating and not current:
                current = self._current(item)
            a = {n: values.get(n, current.get(n)) for n in _ADDRESS}
            item.physical_addresses = [PhysicalAddress(label="Business", street=a["address1_street"],
                                                       city=a["address1_city"], state=a["address1_stateorprovince"],
                                                       zipcode=a["address1_postalcode"],
                                                       country=a["address1_country"])] if any(a.values()) else None
            fields.append("physical_addresses")
        if "description" in values:
            item.body = values["description"]
            fields.append("body")
        for name, attr in (("birthdate", "birthday"), ("anniversary", "wedding_anniversary")):
            if name in values:
                setattr(item, attr, EWSDate.fromisoformat(values[name]) if values[name] else None)
                fields.append(attr)
        if "childrensnames" in values:
            item.children = [c.strip() for c in (values["childrensnames"] or "").split(";") if c.strip()] or None
            fields.append("children")
        if creating and not item.display_name:
            names = [values.get("firstname"), values.get("middlename"), values.get("lastname")]
            item.display_name = " ".join(n for n in names if n) or values.get("emailaddress1") or "?"
        return list(dict.fromkeys(fields))

    def _current(self, item: Any) -> dict[str, Optional[str]]:
        return self.values(self._conn.refetch("contact", item.id, self.only))
