"""LDIF records and CSV rows -> ``Row`` values, one per store record, checked field by field.

Three shapes arrive here:

* CRM-shaped LDIF (what ``abook export`` writes): ``objectClass: crmRecord``, ``crmEntity`` names the table,
  ``uid`` the record id; the published attributes (``directory/attributes.py``) and the CRM fields under
  their CRM names. CRM fields win over published attributes; the record is the whole truth for its
  columns (what it leaves out becomes empty or the default), except ownership and history (``KEEP_IF_ABSENT``).
* Plain ``inetOrgPerson`` LDIF from any directory: the standard attributes map through the same table onto
  the configured entity; the record id is derived from the DN, so re-importing upserts by DN.
* CSV with the CRM's column names, one entity per file (``csv_rows.py``); only the columns present are written.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from typing import Any

from abook.directory.attributes import ALIASES, ATTRIBUTES
from abook.store.enums import EMAIL_FIELDS, ENTITIES
from abook.transfer import fields
from abook.transfer.fields import BY_NAME, BadValue
from abook.transfer.ldif import LdifError, LdifRecord

#: auxiliary object class and attribute naming a record's table in CRM-shaped LDIF
RECORD_CLASS = "crmRecord"
ENTITY_ATTR = "crmEntity"
#: record ids of plain-LDIF entries and CSV rows without an id are derived under this namespace
NAMESPACE = uuid.UUID("38ffadf9-662d-47d3-a885-f4f1fc3034c7")
PERSON_CLASSES = frozenset({"person", "organizationalperson", "inetorgperson", "residentialperson"})
PLAIN_ENTITIES = ("contact", "account", "lead")


@dataclass(slots=True)
class NameRef:
    """A reference given by name (CSV lookups: an owner's user name, an account's name) to resolve."""

    name: str


@dataclass(slots=True)
class Row:
    table: str
    id: str
    line: int
    #: the columns this record gives (model column names); None means empty
    values: dict[str, Any]
    #: CRM shape: columns not given become empty/default (except KEEP_IF_ABSENT)
    full: bool = False
    #: plain LDIF: the DN it came from (upsert by DN)
    plain_dn: str | None = None
    #: a contact's company (``o``) to resolve to its parent account by name
    account_name: str | None = None
    #: a plain password to check against the stored hash or hash (never logged)
    password: str | None = field(default=None, repr=False)
    #: systemuser: role ids (None: not given)
    roles: list[str] | None = None
    #: role: entity -> read depth
    privileges: dict[str, int] | None = None
    #: activity: its parties, (role, address, party type, party id, display name) (None: not given)
    parties: list[tuple[str, str | None, str | None, str | None, str | None]] | None = None


def _published(entity: str) -> dict[str, str]:
    """lowercased attribute name or alias -> CRM field (first pair naming an attribute wins)."""
    out: dict[str, str] = {}
    for attr, fld in ATTRIBUTES[entity]:
        out.setdefault(attr.lower(), fld)
    for alias, served in ALIASES.items():
        if served.lower() in out:
            out.setdefault(alias, out[served.lower()])
    return out


PUBLISHED: dict[str, dict[str, str]] = {e: _published(e) for e in ENTITIES}
#: the fields a plain entry of each entity is the whole truth for (absent attribute -> cleared)
PLAIN_FIELDS: dict[str, tuple[str, ...]] = {
    e: tuple(dict.fromkeys(f for f in PUBLISHED[e].values() if "." not in f)) for e in PLAIN_ENTITIES
}
TABLE_NAMES = {t.lower(): t for t in fields.TABLES}


_NAMESPACE_BYTES = NAMESPACE.bytes


def derived_id(name: str) -> str:
    """``str(uuid.uuid5(NAMESPACE, name))``, without building UUID objects (it runs once per record)."""
    h = bytearray(hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8")).digest()[:16])
    h[6] = (h[6] & 0x0F) | 0x50
    h[8] = (h[8] & 0x3F) | 0x80
    x = h.hex()
    return f"{x[:8]}-{x[8:12]}-{x[12:16]}-{x[16:20]}-{x[20:]}"


class RecordParser:
    """Turns LDIF records into Rows for one file."""

    def __init__(self, file: str, plain_entity: str = "contact") -> None:
        self.file = file
        self.plain_entity = plain_entity
        self.skipped = 0

    def error(self, line: int, msg: str) -> LdifError:
        return LdifError(self.file, line, msg)

    def parse(self, record: LdifRecord) -> Row | None:
        classes = set()
        entity_attr = None
        for a in record.attrs:
            low = a.name.lower()
            if low == "objectclass" and isinstance(a.value, str):
                classes.add(a.value.strip().lower())
            elif low == ENTITY_ATTR.lower():
                entity_attr = a
        if entity_attr is not None:
            return self._crm(record, entity_attr)
        if classes & PERSON_CLASSES:
            return self._plain(record)
        self.skipped += 1  # containers (o=crm, ou=Contacts), groups, ...
        return None

    # -- CRM shape ------------------------------------------------------------------------------------

    def _crm(self, record: LdifRecord, entity_attr: Any) -> Row:
        table = TABLE_NAMES.get(str(entity_attr.value).strip().lower())
        if table is None:
            raise self.error(entity_attr.line, f"{ENTITY_ATTR} {entity_attr.value!r} is not one of "
                             f"{', '.join(fields.TABLES)}")
        record_id = None
        by_name = BY_NAME[table]
        published = PUBLISHED.get(table, {})
        crm: dict[str, Any] = {}
        pub: dict[str, Any] = {}
        row = Row(table, "", record.line, crm, full=True)
        seen: dict[str, int] = {}
        for a in record.attrs:
            low = a.name.lower()
            if low in ("objectclass", ENTITY_ATTR.lower()):
                continue
            value = self._text(a)
            if low == "uid":
                record_id = self._parse(a, fields.parse_id, value)
                continue
            spec = by_name.get(low)
            if spec is not None:
                if spec.column in seen:
                    raise self.error(a.line, f"{a.name} appears twice (line {seen[spec.column]} and here)")
                seen[spec.column] = a.line
                if spec.column == "password_hash":
                    self._password(row, a, value)
                elif spec.kind == "text" and spec.column not in fields.CHOICES:  # the common case, inline
                    if spec.length is not None and len(value) > spec.length:
                        raise self.error(a.line, f"{a.name}: longer than {spec.length} characters")
                    crm[spec.column] = value or None
                else:
                    crm[spec.column] = self._parse(a, lambda v: fields.parse_value(spec, v), value)
            elif table == "role" and low == "readdepth":
                entity, depth = self._parse(a, fields.parse_depth, value)
                row.privileges = row.privileges or {}
                row.privileges[entity] = depth
            elif table == "systemuser" and low == "roleid":
                row.roles = row.roles if row.roles is not None else []
                row.roles.append(self._parse(a, fields.parse_id, value))
            elif table == "activity" and low == "party":
                row.parties = row.parties if row.parties is not None else []
                row.parties.append(self._parse(a, fields.parse_party, value))
            elif low in published:
                self._published(row, table, pub, published[low], a, value)
            else:
                raise self.error(a.line, f"{a.name} is not an attribute of a {table} record")
        if record_id is None:
            record_id = self._id_from_dn(record)
        row.id = record_id
        for col, value in pub.items():
            crm.setdefault(col, value)
        if table == "systemuser" and row.roles is None:
            row.roles = []
        if table == "role" and row.privileges is None:
            row.privileges = {}
        if table == "activity" and row.parties is None:
            row.parties = []
        return row

    def _id_from_dn(self, record: LdifRecord) -> str:
        first = record.dn.split(",", 1)[0]
        name, _, value = first.partition("=")
        if name.strip().lower() != "uid":
            raise self.error(record.line, "a crmRecord needs its record id as uid (attribute or RDN)")
        try:
            return fields.parse_id(value)
        except BadValue as e:
            raise self.error(record.line, f"uid: {e}") from None

    def _password(self, row: Row, a: Any, value: str) -> None:
        if value.startswith(fields.PASSWORD_SCHEME):
            if not value[len(fields.PASSWORD_SCHEME):].startswith("$argon2"):
                raise self.error(a.line, f"userPassword: a {fields.PASSWORD_SCHEME} value must be an argon2 hash")
            row.values["password_hash"] = value[len(fields.PASSWORD_SCHEME):]
        elif value.startswith("{") and "}" in value:
            raise self.error(a.line, f"userPassword: the scheme {value[:value.index('}') + 1]} is not supported "
                             f"(give {fields.PASSWORD_SCHEME} hashes or a plain password)")
        elif value:
            row.password = value

    # -- plain inetOrgPerson ----------------------------------------------------------------------------

    def _plain(self, record: LdifRecord) -> Row:
        entity = self.plain_entity
        published = PUBLISHED[entity]
        values: dict[str, Any] = dict.fromkeys(PLAIN_FIELDS[entity])
        pub: dict[str, Any] = {}
        row = Row(entity, derived_id(record.dn.lower()), record.line, values, plain_dn=record.dn)
        for a in record.attrs:
            fld = published.get(a.name.lower())
            if fld is not None:
                self._published(row, entity, pub, fld, a, a.value if isinstance(a.value, str) else self._text(a))
        values.update(pub)
        if entity == "contact":
            spec = BY_NAME["contact"]["source_dn"]
            if spec.length is not None and len(record.dn) > spec.length:
                raise self.error(record.line, f"the DN is longer than {spec.length} characters")
            values["source_dn"] = record.dn
        if entity == "account" and not values.get("name"):
            raise self.error(record.line, "an account needs a name (cn)")
        return row

    # -- shared ---------------------------------------------------------------------------------------

    def _published(self, row: Row, table: str, pub: dict[str, Any], fld: str, a: Any, value: str) -> None:
        if fld == "parentcustomer.name":
            if row.account_name is None and value:
                row.account_name = value
            return
        if "." in fld:
            return  # joined values (a user's business unit name) are carried by their reference column
        if fld not in pub:
            spec = BY_NAME[table][fld]
            if spec.kind == "text" and spec.column not in fields.CHOICES:  # the common case, inline
                if spec.length is not None and len(value) > spec.length:
                    raise self.error(a.line, f"{a.name}: longer than {spec.length} characters")
                pub[fld] = value or None
            else:
                pub[fld] = self._parse(a, lambda v: fields.parse_value(spec, v), value)
            return
        primary, others = EMAIL_FIELDS[table]
        if fld == primary and value:  # a second mail value fills the next free email field
            for other in others:
                if other not in pub:
                    pub[other] = self._parse(a, lambda v: fields.parse_value(BY_NAME[table][other], v), value)
                    return

    def _text(self, a: Any) -> str:
        if isinstance(a.value, bytes):
            raise self.error(a.line, f"the value of {a.name} is not UTF-8 text")
        return a.value

    def _parse(self, a: Any, fn: Any, value: str) -> Any:
        try:
            return fn(value)
        except BadValue as e:
            raise self.error(a.line, f"{a.name}: {e}") from None
