"""The root DSE and the subschema entry (``cn=Subschema``): what the server supports and serves.

The subschema describes every attribute of ``abook/directory/attributes.py`` plus the naming and
record attributes (objectClass, uid, crmEntity, crmId), and the object classes of the tree:
inetOrgPerson (with person and organizationalPerson), the auxiliary ``crmRecord`` that carries the
entity type (``crmEntity``) and record id (``crmId``) and the attributes mail clients read that
inetOrgPerson lacks, and organization / organizationalUnit for the suffix and the books.
Attributes without a registered OID use the ``<name>-oid`` form OpenLDAP accepts.
"""

from __future__ import annotations

from typing import Sequence

from abook.directory.attributes import ATTRIBUTES

STARTTLS = b"1.3.6.1.4.1.1466.20037"
WHOAMI = b"1.3.6.1.4.1.4203.1.11.3"
SUBSCHEMA_DN = "cn=Subschema"

_DSTRING, _IA5, _TEL, _OID, _PRINTABLE = (
    "1.3.6.1.4.1.1466.115.121.1.15", "1.3.6.1.4.1.1466.115.121.1.26", "1.3.6.1.4.1.1466.115.121.1.50",
    "1.3.6.1.4.1.1466.115.121.1.38", "1.3.6.1.4.1.1466.115.121.1.44",
)
_NAME_RULES = "EQUALITY caseIgnoreMatch SUBSTR caseIgnoreSubstringsMatch"
_MAIL_RULES = "EQUALITY caseIgnoreIA5Match SUBSTR caseIgnoreIA5SubstringsMatch"
_TEL_RULES = "EQUALITY telephoneNumberMatch SUBSTR telephoneNumberSubstringsMatch"

#: attribute -> (OID, names after the first, matching rules, syntax, single-valued)
ATTRIBUTE_TYPES: dict[str, tuple[str, tuple[str, ...], str, str, bool]] = {
    "objectClass": ("2.5.4.0", (), "EQUALITY objectIdentifierMatch", _OID, False),
    "cn": ("2.5.4.3", ("commonName",), _NAME_RULES, _DSTRING, False),
    "sn": ("2.5.4.4", ("surname",), _NAME_RULES, _DSTRING, False),
    "c": ("2.5.4.6", ("countryName",), "EQUALITY caseIgnoreMatch", _PRINTABLE, True),
    "l": ("2.5.4.7", ("localityName",), _NAME_RULES, _DSTRING, False),
    "st": ("2.5.4.8", ("stateOrProvinceName",), _NAME_RULES, _DSTRING, False),
    "street": ("2.5.4.9", ("streetAddress",), _NAME_RULES, _DSTRING, False),
    "o": ("2.5.4.10", ("organizationName",), _NAME_RULES, _DSTRING, False),
    "ou": ("2.5.4.11", ("organizationalUnitName",), _NAME_RULES, _DSTRING, False),
    "title": ("2.5.4.12", (), _NAME_RULES, _DSTRING, False),
    "description": ("2.5.4.13", (), _NAME_RULES, _DSTRING, False),
    "postalCode": ("2.5.4.17", (), _NAME_RULES, _DSTRING, False),
    "telephoneNumber": ("2.5.4.20", (), _TEL_RULES, _TEL, False),
    "facsimileTelephoneNumber": ("2.5.4.23", ("fax",), _TEL_RULES, _TEL, False),
    "givenName": ("2.5.4.42", ("gn",), _NAME_RULES, _DSTRING, False),
    "initials": ("2.5.4.43", (), _NAME_RULES, _DSTRING, False),
    "uid": ("0.9.2342.19200300.100.1.1", ("userid",), _NAME_RULES, _DSTRING, False),
    "mail": ("0.9.2342.19200300.100.1.3", ("rfc822Mailbox",), _MAIL_RULES, _IA5, False),
    "homePhone": ("0.9.2342.19200300.100.1.20", ("homeTelephoneNumber",), _TEL_RULES, _TEL, False),
    "otherMailbox": ("0.9.2342.19200300.100.1.22", (), _MAIL_RULES, _IA5, False),
    "mobile": ("0.9.2342.19200300.100.1.41", ("mobileTelephoneNumber",), _TEL_RULES, _TEL, False),
    "pager": ("0.9.2342.19200300.100.1.42", ("pagerTelephoneNumber",), _TEL_RULES, _TEL, False),
    "co": ("0.9.2342.19200300.100.1.43", ("friendlyCountryName",), _NAME_RULES, _DSTRING, False),
    "displayName": ("2.16.840.1.113730.3.1.241", (), _NAME_RULES, _DSTRING, True),
    "labeledURI": ("1.3.6.1.4.1.250.1.57", (), "EQUALITY caseExactMatch", _DSTRING, False),
    "department": ("1.2.840.113556.1.2.141", (), _NAME_RULES, _DSTRING, True),
    "mozillaSecondEmail": ("mozillaSecondEmail-oid", (), _MAIL_RULES, _IA5, True),
    "mozillaNickname": ("mozillaNickname-oid", (), _NAME_RULES, _DSTRING, True),
    "mozillaWorkUrl": ("mozillaWorkUrl-oid", (), "EQUALITY caseIgnoreIA5Match", _IA5, True),
    "crmEntity": ("crmEntity-oid", (), "EQUALITY caseIgnoreMatch", _DSTRING, True),
    "crmId": ("crmId-oid", (), "EQUALITY caseIgnoreMatch", _DSTRING, True),
}
_GENERALIZED_TIME = "1.3.6.1.4.1.1466.115.121.1.24"
_OPERATIONAL_RULES = " NO-USER-MODIFICATION USAGE directoryOperation"
#: operational attributes (sent only for "+" or by name): attribute -> (OID, rules, syntax)
OPERATIONAL_TYPES: dict[str, tuple[str, str, str]] = {
    "entryUUID": ("1.3.6.1.1.16.4", "EQUALITY UUIDMatch", "1.3.6.1.1.16.1"),
    "createTimestamp": ("2.5.18.1", "EQUALITY generalizedTimeMatch", _GENERALIZED_TIME),
    "modifyTimestamp": ("2.5.18.2", "EQUALITY generalizedTimeMatch", _GENERALIZED_TIME),
    "entryDN": ("1.3.6.1.1.20", "EQUALITY distinguishedNameMatch", "1.3.6.1.4.1.1466.115.121.1.12"),
    "structuralObjectClass": ("2.5.21.9", "EQUALITY objectIdentifierMatch", _OID),
    "subschemaSubentry": ("2.5.18.10", "EQUALITY distinguishedNameMatch", "1.3.6.1.4.1.1466.115.121.1.12"),
}

_PERSON_MUST = ("cn", "sn")
_ORG_PERSON_MAY = ("telephoneNumber", "facsimileTelephoneNumber", "street", "postalCode", "l", "st", "ou",
                   "title", "description")
_INET_MAY = ("displayName", "givenName", "initials", "mail", "mobile", "pager", "homePhone", "o", "uid",
             "labeledURI")


def _served() -> list[str]:
    names: dict[str, str] = {}
    for pairs in ATTRIBUTES.values():
        for attr, _field in pairs:
            names.setdefault(attr.lower(), attr)
    return list(names.values())


def _crm_may() -> tuple[str, ...]:
    standard = {a.lower() for a in _PERSON_MUST + _ORG_PERSON_MAY + _INET_MAY}
    return tuple(a for a in _served() if a.lower() not in standard)


OBJECT_CLASSES: tuple[str, ...] = (
    "( 2.5.6.0 NAME 'top' ABSTRACT MUST objectClass )",
    "( 2.5.6.4 NAME 'organization' SUP top STRUCTURAL MUST o MAY ( description $ l $ st $ street $ "
    "postalCode $ telephoneNumber ) )",
    "( 2.5.6.5 NAME 'organizationalUnit' SUP top STRUCTURAL MUST ou MAY description )",
    "( 2.5.6.6 NAME 'person' SUP top STRUCTURAL MUST ( sn $ cn ) MAY ( telephoneNumber $ description ) )",
    "( 2.5.6.7 NAME 'organizationalPerson' SUP person STRUCTURAL MAY ( "
    + " $ ".join(_ORG_PERSON_MAY) + " ) )",
    "( 2.16.840.1.113730.3.2.2 NAME 'inetOrgPerson' SUP organizationalPerson STRUCTURAL MAY ( "
    + " $ ".join(_INET_MAY) + " ) )",
    "( crmRecord-oid NAME 'crmRecord' DESC 'a CRM record: its entity and id' SUP top AUXILIARY "
    "MAY ( crmEntity $ crmId $ " + " $ ".join(_crm_may()) + " ) )",
    "( 2.5.17.0 NAME 'subentry' SUP top STRUCTURAL MUST cn )",
    "( 2.5.20.1 NAME 'subschema' AUXILIARY MAY ( objectClasses $ attributeTypes $ ldapSyntaxes $ "
    "matchingRules ) )",
)


def attribute_types() -> tuple[str, ...]:
    out = []
    for attr, (oid, aliases, rules, syntax, single) in ATTRIBUTE_TYPES.items():
        names = (attr,) + aliases
        name = "'" + names[0] + "'" if len(names) == 1 else "( " + " ".join("'" + n + "'" for n in names) + " )"
        out.append(f"( {oid} NAME {name} {rules} SYNTAX {syntax}" + (" SINGLE-VALUE" if single else "") + " )")
    for attr, (oid, rules, syntax) in OPERATIONAL_TYPES.items():
        out.append(f"( {oid} NAME '{attr}' {rules} SYNTAX {syntax} SINGLE-VALUE{_OPERATIONAL_RULES} )")
    return tuple(out)


LDAP_SYNTAXES = (
    f"( {_DSTRING} DESC 'Directory String' )",
    f"( {_IA5} DESC 'IA5 String' )",
    f"( {_TEL} DESC 'Telephone Number' )",
    f"( {_OID} DESC 'OID' )",
    f"( {_PRINTABLE} DESC 'Printable String' )",
)


def _select(attributes: Sequence[tuple[str, Sequence[bytes]]], requested: Sequence[str],
            types_only: bool) -> list[tuple[str, list[bytes]]]:
    """Attribute selection for the two special entries: all attributes unless specific ones are named."""
    wanted = {r.lower() for r in requested}
    if "1.1" in wanted and len(wanted) == 1:
        return []
    all_of_them = not wanted or "*" in wanted or "+" in wanted
    out = []
    for name, values in attributes:
        if all_of_them or name.lower() in wanted:
            out.append((name, [] if types_only else list(values)))
    return out


def root_dse(suffix: str, tls_available: bool, requested: Sequence[str], types_only: bool = False) -> list:
    extensions = [WHOAMI] + ([STARTTLS] if tls_available else [])
    attrs = [
        ("objectClass", [b"top", b"extensibleObject"]),
        ("namingContexts", [suffix.encode("utf-8")]),
        ("supportedLDAPVersion", [b"3"]),
        ("supportedControl", [b"1.2.840.113556.1.4.319", b"1.2.840.113556.1.4.473", b"2.16.840.1.113730.3.4.9"]),
        ("supportedExtension", extensions),
        # all operational attributes ("+"), absolute true/false filters, objectClass lists in attrs
        ("supportedFeatures", [b"1.3.6.1.4.1.4203.1.5.1", b"1.3.6.1.4.1.4203.1.5.3",
                               b"1.3.6.1.4.1.4203.1.5.2"]),
        ("supportedSASLMechanisms", []),
        ("subschemaSubentry", [SUBSCHEMA_DN.encode()]),
        ("vendorName", [b"abook"]),
        ("vendorVersion", [b"abook 0.1"]),
    ]
    attrs = [(n, v) for n, v in attrs if v]
    return _select(attrs, requested, types_only)


def subschema(requested: Sequence[str], types_only: bool = False) -> list:
    attrs = [
        ("objectClass", [b"top", b"subentry", b"subschema", b"extensibleObject"]),
        ("cn", [b"Subschema"]),
        ("objectClasses", [s.encode() for s in OBJECT_CLASSES]),
        ("attributeTypes", [s.encode() for s in attribute_types()]),
        ("ldapSyntaxes", [s.encode() for s in LDAP_SYNTAXES]),
    ]
    return _select(attrs, requested, types_only)
