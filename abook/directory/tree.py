"""The shape of the tree: the suffix, one ``ou`` per address book, entries ``uid=<record id>``.

An entry's RDN is built from its record id, so it never changes when a name does.
"""

from __future__ import annotations

from dataclasses import dataclass

from ldaptor.protocols.ldap.distinguishedname import DistinguishedName, InvalidRelativeDistinguishedName

#: address book (the ou value) -> entity name
BOOKS: dict[str, str] = {
    "Accounts": "account",
    "Contacts": "contact",
    "Leads": "lead",
    "Queues": "queue",
    "Users": "systemuser",
    "Facilities": "equipment",
}
ENTITY_BOOK: dict[str, str] = {entity: book for book, entity in BOOKS.items()}
_BOOK_BY_LOWER = {book.lower(): book for book in BOOKS}


class BadDN(ValueError):
    """Not a syntactically valid DN."""


@dataclass(frozen=True)
class Location:
    """Where a DN points in the tree.

    kind: "root" (the suffix), "book" (an ou), "entry" (a record), "outside" (not under the suffix),
    "missing" (under the suffix but names nothing that can exist).
    """

    kind: str
    book: str | None = None
    record_id: str | None = None


class Tree:
    def __init__(self, suffix: str = "o=crm") -> None:
        self.suffix_dn = DistinguishedName(suffix)
        self.suffix = self.suffix_dn.getText()
        self._suffix_norm = _norm(self.suffix_dn)
        self._depth = len(self.suffix_dn.listOfRDNs)

    def book_dn(self, book: str) -> str:
        return f"ou={book},{self.suffix}"

    def entry_dn(self, entity: str, record_id: str) -> str:
        return f"uid={record_id},ou={ENTITY_BOOK[entity]},{self.suffix}"

    def root_attributes(self) -> dict[str, tuple[str, ...]]:
        """The suffix entry's attributes, from its RDN (o=, dc= or ou=; extensibleObject otherwise)."""
        ava = self.suffix_dn.listOfRDNs[0].split()[0]
        kind, value = ava.attributeType, ava.value
        classes = {"o": ("top", "organization"), "dc": ("top", "dcObject", "organization"),
                   "ou": ("top", "organizationalUnit")}.get(kind.lower(), ("top", "extensibleObject"))
        attrs: dict[str, tuple[str, ...]] = {"objectClass": classes, kind: (value,)}
        if kind.lower() == "dc":
            attrs["o"] = (value,)
        return attrs

    def locate(self, dn: str | bytes) -> Location:
        if isinstance(dn, bytes):
            dn = dn.decode("utf-8", "replace")
        try:
            parsed = DistinguishedName(dn)
        except (InvalidRelativeDistinguishedName, ValueError, IndexError) as e:
            raise BadDN(str(e)) from None
        rdns = parsed.listOfRDNs
        if len(rdns) < self._depth or _norm_rdns(rdns[len(rdns) - self._depth:]) != self._suffix_norm:
            return Location("outside")
        rest = rdns[: len(rdns) - self._depth]
        if not rest:
            return Location("root")
        book_rdn = rest[-1]
        avas = book_rdn.split()
        if len(avas) != 1 or avas[0].attributeType.lower() != "ou":
            return Location("missing")
        book = _BOOK_BY_LOWER.get(avas[0].value.lower())
        if book is None:
            return Location("missing")
        if len(rest) == 1:
            return Location("book", book)
        if len(rest) > 2:
            return Location("missing", book)
        entry_avas = rest[0].split()
        if len(entry_avas) != 1 or entry_avas[0].attributeType.lower() != "uid" or "\x00" in entry_avas[0].value:
            return Location("missing", book)  # no record id holds a NUL (and PostgreSQL cannot bind one)
        return Location("entry", book, entry_avas[0].value.lower())


def book_attributes(book: str) -> dict[str, tuple[str, ...]]:
    """An address book's ``ou`` entry."""
    return {"objectClass": ("top", "organizationalUnit"), "ou": (book,)}


def _norm_rdns(rdns: list) -> tuple:
    return tuple(
        tuple(sorted((a.attributeType.lower(), a.value.lower()) for a in rdn.split())) for rdn in rdns
    )


def _norm(dn: DistinguishedName) -> tuple:
    return _norm_rdns(dn.listOfRDNs)
