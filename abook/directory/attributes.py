"""Which CRM field each published LDAP attribute comes from, per entity.

One table serves the LDAP server (entries and filters) and LDIF import/export (a plain inetOrgPerson
entry maps back onto contact fields through the same table). Attribute names are matched
case-insensitively; the spelling here is the one served. An attribute may appear under several names
(Thunderbird, Outlook, Evolution and Apple clients look for different ones); ``ALIASES`` lists them.

Values that need a join (a contact's company ``o`` is its parent account's name; a user's ``ou`` is
their business unit's name) are marked with a dotted field: ``parentcustomer.name``.
"""

from __future__ import annotations

#: entity -> ordered (attribute, CRM field) pairs. The first pair naming an attribute wins on export.
ATTRIBUTES: dict[str, tuple[tuple[str, str], ...]] = {
    "contact": (
        ("cn", "fullname"),
        ("displayName", "fullname"),
        ("givenName", "firstname"),
        ("initials", "middlename"),
        ("sn", "lastname"),
        ("mail", "emailaddress1"),
        ("mozillaSecondEmail", "emailaddress2"),
        ("otherMailbox", "emailaddress3"),
        ("telephoneNumber", "telephone1"),
        ("homePhone", "telephone2"),
        ("mobile", "mobilephone"),
        ("pager", "pager"),
        ("facsimileTelephoneNumber", "fax"),
        ("title", "jobtitle"),
        ("department", "department"),
        ("ou", "department"),
        ("o", "parentcustomer.name"),
        ("street", "address1_line1"),
        ("l", "address1_city"),
        ("st", "address1_stateorprovince"),
        ("postalCode", "address1_postalcode"),
        ("co", "address1_country"),
        ("description", "description"),
        ("labeledURI", "websiteurl"),
        ("mozillaWorkUrl", "websiteurl"),
        ("mozillaNickname", "nickname"),
    ),
    "account": (
        ("cn", "name"),
        ("displayName", "name"),
        ("o", "name"),
        ("mail", "emailaddress1"),
        ("mozillaSecondEmail", "emailaddress2"),
        ("otherMailbox", "emailaddress3"),
        ("telephoneNumber", "telephone1"),
        ("facsimileTelephoneNumber", "fax"),
        ("street", "address1_line1"),
        ("l", "address1_city"),
        ("st", "address1_stateorprovince"),
        ("postalCode", "address1_postalcode"),
        ("co", "address1_country"),
        ("description", "description"),
        ("labeledURI", "websiteurl"),
        ("mozillaWorkUrl", "websiteurl"),
    ),
    "lead": (
        ("cn", "fullname"),
        ("displayName", "fullname"),
        ("givenName", "firstname"),
        ("initials", "middlename"),
        ("sn", "lastname"),
        ("o", "companyname"),
        ("mail", "emailaddress1"),
        ("mozillaSecondEmail", "emailaddress2"),
        ("otherMailbox", "emailaddress3"),
        ("telephoneNumber", "telephone1"),
        ("homePhone", "telephone2"),
        ("mobile", "mobilephone"),
        ("pager", "pager"),
        ("facsimileTelephoneNumber", "fax"),
        ("title", "jobtitle"),
        ("street", "address1_line1"),
        ("l", "address1_city"),
        ("st", "address1_stateorprovince"),
        ("postalCode", "address1_postalcode"),
        ("co", "address1_country"),
        ("description", "description"),
        ("labeledURI", "websiteurl"),
        ("mozillaWorkUrl", "websiteurl"),
    ),
    "queue": (
        ("cn", "name"),
        ("displayName", "name"),
        ("mail", "emailaddress"),
        ("description", "description"),
    ),
    "systemuser": (
        ("cn", "fullname"),
        ("displayName", "fullname"),
        ("givenName", "firstname"),
        ("initials", "middlename"),
        ("sn", "lastname"),
        ("mail", "internalemailaddress"),
        ("mozillaSecondEmail", "personalemailaddress"),
        ("telephoneNumber", "address1_telephone1"),
        ("homePhone", "homephone"),
        ("mobile", "mobilephone"),
        ("facsimileTelephoneNumber", "address1_fax"),
        ("title", "jobtitle"),
        ("department", "department"),
        ("ou", "businessunit.name"),
        ("street", "address1_line1"),
        ("l", "address1_city"),
        ("st", "address1_stateorprovince"),
        ("postalCode", "address1_postalcode"),
        ("co", "address1_country"),
        ("description", "description"),
        ("mozillaNickname", "nickname"),
    ),
    "equipment": (
        ("cn", "name"),
        ("displayName", "name"),
        ("mail", "emailaddress"),
        ("l", "site"),
        ("description", "description"),
    ),
}

#: other names clients use for a served attribute (lowercased alias -> served attribute)
ALIASES: dict[str, str] = {
    "commonname": "cn",
    "surname": "sn",
    "gn": "givenName",
    "rfc822mailbox": "mail",
    "mozillanickname": "mozillaNickname",
    "mozillahomeurl": "labeledURI",
    "fax": "facsimileTelephoneNumber",
    "mobiletelephonenumber": "mobile",
    "pagertelephonenumber": "pager",
    "homephone": "homePhone",
    "hometelephonenumber": "homePhone",
    "organizationname": "o",
    "organizationalunitname": "ou",
    "localityname": "l",
    "stateorprovincename": "st",
    "streetaddress": "street",
    "friendlycountryname": "co",
    "fileas": "displayName",
    "company": "o",
    "workurl": "labeledURI",
}


def field_for(entity: str, attribute: str) -> str | None:
    """The CRM field an attribute maps to for an entity (case-insensitive, aliases resolved)."""
    name = ALIASES.get(attribute.lower(), attribute).lower()
    for attr, field in ATTRIBUTES[entity]:
        if attr.lower() == name:
            return field
    return None
