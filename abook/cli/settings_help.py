"""What the settings of `abook user set` and `abook queue set` mean, their values and defaults, for --help
and `abook user show`: the words an admin reads where they look, built from the models' own tuples and
column defaults so they cannot drift from what the store does."""

from __future__ import annotations

from typing import Iterable

from abook.store.enums import ADDRESS_BOOK_MATCHING, INCOMING_METHODS, OUTGOING_METHODS, TRACKING_OPTIONS
from abook.store.security import OWNER_SCOPES
from abook.store.users import NO_DEFAULT, new_user_default

#: key -> (allowed values, or None for free text; what it means)
MEANINGS: dict[str, tuple[tuple[str, ...] | None, str]] = {
    "address_book_matching": (ADDRESS_BOOK_MATCHING,
                              "which contacts the Contacts book shows: synchronised, only those of the local "
                              "data filter (as in the CRM); all, every contact the roles allow"),
    "local_filter_scope": (OWNER_SCOPES, "the local data filter's contacts: those owned by the user, by the "
                                         "user's unit, by it and the units below, or by anyone"),
    "local_filter_ldap": (None, "an RFC 4515 filter over contact attributes narrowing the local data filter, "
                                "e.g. (co=Germany); none for no filter"),
    "local_filter_include_inactive": (("yes", "no"), "whether the local data filter keeps inactive contacts"),
    "tracking_option": (TRACKING_OPTIONS, "which incoming mail is tracked: all, replies to CRM email, mail "
                                          "from CRM leads, contacts and accounts, or none"),
    "incoming_method": (INCOMING_METHODS, "how incoming mail reaches abook: abook polls the mailbox, it "
                                          "forwards copies to the forward mailbox, the user tracks by hand, "
                                          "or not at all"),
    "outgoing_method": (OUTGOING_METHODS, "who sends CRM email written by this user or queue: abook's router "
                                          "over [smtp], the user's own mail client, or no one"),
    "sync_enabled": (("yes", "no"), "whether abook keeps this user's contacts, appointments and tasks in step "
                                    "with their mailbox ([sync]; `abook sync status`)"),
    "statecode": (("active", "inactive"), "inactive users cannot bind; inactive queues are left out"),
    "firstname": (None, "first name"),
    "lastname": (None, "last name"),
    "email": (None, "the internal email address (a user's primary email in the Users book)"),
}


def default_of(key: str) -> str | None:
    """The value a new user has, as an admin types it."""
    value = new_user_default({"email": "internalemailaddress"}.get(key, key))
    if value is NO_DEFAULT:
        return {"local_filter_ldap": "none"}.get(key)
    if key == "statecode":
        return "active" if value == 0 else "inactive"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def describe(keys: Iterable[str]) -> str:
    """One paragraph per key: ``key=a|b (default a)``, then what it means."""
    out = []
    for key in keys:
        values, meaning = MEANINGS[key]
        default = default_of(key)
        head = f"{key}=" + ("|".join(values) if values else "TEXT")
        out.append(f"  {head}" + (f" (default {default})" if default else "") + f"\n      {meaning}")
    return "\n".join(out)


def contacts_book_note(name: str, matching: str, scope: str, ldap: str | None, inactive: bool) -> str:
    """What the user's Contacts book shows, in a sentence, with the command that widens it."""
    if matching == "all":
        return "Contacts book: every contact the roles allow (address_book_matching=all)."
    owners = {"user": "they own", "business_unit": "their business unit owns",
              "parent_child": "their business unit or a unit below it owns",
              "organisation": "anyone owns"}.get(scope, f"owned per {scope}")
    narrowed = f", matching {ldap}" if ldap else ""
    which = "contacts" if inactive else "active contacts"
    return (f"Contacts book: only the {which} {owners}{narrowed}, even where the roles allow more "
            f"(address_book_matching=synchronised). To show every contact the roles allow: "
            f"abook user set {name} address_book_matching=all")
