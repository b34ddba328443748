"""Contacts exported by Outlook and by Google Contacts, read as CRM columns (`abook import FILE.csv`).

A header naming any of ``MARKERS`` is such an export; each of its columns found in ``COLUMNS`` is read as
the CRM field named there (``company`` is the contact's account, looked up by name and created when
missing, or a lead's company name). The export's other columns (birthday, spouse, home address, ...)
have no field in abook: they are listed after the import when they hold data, never an error, since the
program that wrote the file fixed their names. Google puts several values in one cell separated by
" ::: "; the first is read.
"""

from __future__ import annotations

#: header names (lowercased) that only these exports use: CRM column names never hold a blank
MARKERS: dict[str, str] = {
    "first name": "Outlook or Google", "last name": "Outlook or Google", "e-mail address": "Outlook",
    "given name": "Google", "family name": "Google", "e-mail 1 - value": "Google",
}

#: export column (lowercased) -> CRM field of a contact
COLUMNS: dict[str, str] = {
    # Outlook (desktop "Export to a file" and Outlook.com)
    "first name": "firstname",
    "middle name": "middlename",
    "last name": "lastname",
    "title": "salutation",
    "nickname": "nickname",
    "e-mail address": "emailaddress1",
    "e-mail 2 address": "emailaddress2",
    "e-mail 3 address": "emailaddress3",
    "business phone": "telephone1",
    "home phone": "telephone2",
    "other phone": "telephone3",
    "mobile phone": "mobilephone",
    "pager": "pager",
    "business fax": "fax",
    "job title": "jobtitle",
    "department": "department",
    "company": "company",
    "business street": "address1_line1",
    "business street 2": "address1_line2",
    "business street 3": "address1_line3",
    "business city": "address1_city",
    "business state": "address1_stateorprovince",
    "business postal code": "address1_postalcode",
    "business country": "address1_country",
    "business country/region": "address1_country",
    "web page": "websiteurl",
    "notes": "description",
    # Google Contacts (the current export, and the older "Google CSV")
    "name": "fullname",
    "given name": "firstname",
    "additional name": "middlename",
    "family name": "lastname",
    "name prefix": "salutation",
    "e-mail 1 - value": "emailaddress1",
    "e-mail 2 - value": "emailaddress2",
    "e-mail 3 - value": "emailaddress3",
    "phone 1 - value": "telephone1",
    "phone 2 - value": "telephone2",
    "phone 3 - value": "telephone3",
    "organization name": "company",
    "organization title": "jobtitle",
    "organization department": "department",
    "organization 1 - name": "company",
    "organization 1 - title": "jobtitle",
    "organization 1 - department": "department",
    "address 1 - street": "address1_line1",
    "address 1 - city": "address1_city",
    "address 1 - region": "address1_stateorprovince",
    "address 1 - postal code": "address1_postalcode",
    "address 1 - country": "address1_country",
    "website 1 - value": "websiteurl",
}

#: a lead takes the company as its companyname
LEAD_COLUMNS = {**COLUMNS, "organization name": "companyname", "organization 1 - name": "companyname",
                "company": "companyname"}


def export_kind(names: list[str]) -> str | None:
    """"Outlook", "Google" or "Outlook or Google" when the lowercased header names mark such an export."""
    kinds = {MARKERS[n] for n in names if n in MARKERS}
    if not kinds:
        return None
    definite = kinds - {"Outlook or Google"}
    return definite.pop() if len(definite) == 1 else "Outlook or Google"


def first_value(text: str) -> str:
    """Google's "a@x ::: b@y" -> "a@x"."""
    return text.split(" ::: ", 1)[0].strip()
