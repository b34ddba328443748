"""The store -> CRM-shaped LDIF: the published tree plus the CRM fields and the organisation records.

Every record is written as ``uid=<id>,ou=<Book>,<suffix>`` with ``objectClass: crmRecord`` and
``crmEntity``, the attributes LDAP publishes (``directory/attributes.py``) and every non-empty column
under its CRM name. Business units and roles, which LDAP does not publish, sit under ``ou=BusinessUnits``
and ``ou=Roles``. Records are written in id order, attributes in table order, so exporting the same
store twice gives the same bytes, and importing an export into an empty store rebuilds it exactly.
Password hashes are written as ``{ARGON2}`` values, never anything else, and only when asked
(``passwords=True``); ``password_hashes`` counts those written, so the caller can say what the file holds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterator, Sequence

from abook.directory.attributes import ATTRIBUTES
from abook.directory.tree import ENTITY_BOOK
from abook.store.bulk import TableIO
from abook.store.enums import ENTITIES
from abook.transfer import fields
from abook.transfer.fields import BY_NAME, SPECS, TABLES
from abook.transfer.ldif import format_record
from abook.transfer.parse import ENTITY_ATTR, RECORD_CLASS

if TYPE_CHECKING:
    from sqlalchemy import Connection

PERSON_CLASSES = ("top", "person", "organizationalPerson", "inetOrgPerson", RECORD_CLASS)
_SUFFIX_CLASSES = {"o": "organization", "dc": "domain", "ou": "organizationalUnit", "c": "country"}


def _book(table: str) -> str:
    return ENTITY_BOOK.get(table) or fields.ORG_BOOKS[table]


class Exporter:
    def __init__(self, conn: Connection, suffix: str = "o=crm", tables: Sequence[str] = TABLES,
                 passwords: bool = True) -> None:
        self.io = TableIO(conn)
        self.suffix = suffix
        self.tables = [t for t in TABLES if t in tables]
        self.passwords = passwords
        self.counts: dict[str, int] = {}
        self.password_hashes = 0

    def chunks(self) -> Iterator[str]:
        """The LDIF text, one record at a time."""
        yield "version: 1\n\n"
        yield from self._containers()
        account_names = self._names("account") if "contact" in self.tables else {}
        bu_names = self._names("businessunit") if "systemuser" in self.tables else {}
        joined = {"parentcustomer.name": ("parentcustomer_id", account_names),
                  "businessunit.name": ("business_unit_id", bu_names)}
        privileges = self.io.children("roleprivilege", "role_id", "entity", "read_depth")
        user_roles = self.io.children("systemuser_roles", "systemuser_id", "role_id", None)
        parties = self._parties() if "activity" in self.tables else {}
        for table in self.tables:
            published = [(a, f) for a, f in ATTRIBUTES.get(table, ()) if a.lower() not in BY_NAME[table]]
            count = 0
            for row in self.io.scan(table):  # email activities travel with their messages, not here
                attrs: list[tuple[str, Any]] = []
                if table in ENTITIES:
                    attrs += [("objectClass", c) for c in PERSON_CLASSES]
                else:
                    attrs += [("objectClass", "top"), ("objectClass", RECORD_CLASS)]
                attrs += [(ENTITY_ATTR, table), ("uid", row["id"])]
                for attr, fld in published:
                    if "." in fld:
                        column, names = joined[fld]
                        value = names.get(row[column])
                    else:
                        value = row[fld]
                    if value not in (None, ""):
                        attrs.append((attr, str(value)))
                for spec in SPECS[table]:
                    value = row[spec.column]
                    if value is None or value == "":
                        continue
                    if spec.column == "password_hash":
                        if not self.passwords:
                            continue
                        self.password_hashes += 1
                    attrs.append((spec.name, fields.format_value(spec, value)))
                if table == "role":
                    depths = privileges.get(row["id"], {})
                    attrs += [("readdepth", fields.format_depth(e, depths[e])) for e in fields.DEPTH_ENTITIES
                              if e in depths]
                elif table == "systemuser":
                    attrs += [("roleid", r) for r in sorted(user_roles.get(row["id"], {}))]
                elif table == "activity":
                    attrs += [("party", p) for p in parties.get(row["id"], ())]
                count += 1
                yield format_record(f"uid={row['id']},ou={_book(table)},{self.suffix}", attrs)
            self.counts[table] = count

    def _containers(self) -> Iterator[str]:
        first = self.suffix.split(",", 1)[0]
        attr, _, value = first.partition("=")
        cls = _SUFFIX_CLASSES.get(attr.strip().lower())
        if cls:
            yield format_record(self.suffix, [("objectClass", "top"), ("objectClass", cls), (attr.strip(), value.strip())])
        for table in self.tables:
            yield format_record(f"ou={_book(table)},{self.suffix}",
                                [("objectClass", "top"), ("objectClass", "organizationalUnit"), ("ou", _book(table))])

    def _parties(self) -> dict[str, list[str]]:
        return {aid: [fields.format_party(*party) for party in parties]
                for aid, parties in self.io.parties().items()}

    def _names(self, table: str) -> dict[str, str]:
        return self.io.names(table)
