"""One placeholder vocabulary for every template that names a CRM user's account somewhere else: the
router's ``[router.user_mailbox_template] username`` and ``[ldap.upstream] bind_dn``.

``{username}``
    the CRM user name (``domainname``); for a queue, its email address
``{mail}``
    the primary email address (a user's ``internalemailaddress``, a queue's address)
``{id}``
    the user's (or queue's) GUID

``{user}`` and ``{email}``, the template's names before there was one vocabulary, are still accepted for
``{username}`` and ``{mail}``. Any other name is a config error (check-config reports it), never a
``KeyError`` when the daemon fills the template in.
"""

from __future__ import annotations

import string
from typing import Callable

NAMES = ("username", "mail", "id")
ALIASES = {"user": "username", "email": "mail"}
EXPECTED = "{username}, {mail} or {id}"


def problem(template: str) -> str | None:
    """Why ``template`` cannot be filled in with the vocabulary's placeholders, or None."""
    try:
        fields = [field for _, field, _, _ in string.Formatter().parse(template) if field is not None]
    except ValueError as e:
        return f"not a valid template ({e}; a literal brace is written {{{{ or }}}}), got {template!r}"
    unknown = [f"{{{field}}}" for field in fields if field not in NAMES and field not in ALIASES]
    if unknown:
        return f"unknown placeholder {', '.join(unknown)} in {template!r}: expected {EXPECTED}"
    return None


def fill(template: str, username: str, mail: str, id: str, escape: Callable[[str], str] = str) -> str:
    """``template`` with the placeholders filled in, each value passed through ``escape`` first."""
    values = {"username": escape(username), "mail": escape(mail), "id": escape(id)}
    values.update({alias: values[name] for alias, name in ALIASES.items()})
    return template.format(**values)


def validator(value: str) -> str:
    """A pydantic field validator's body: the template, or a ValueError naming what is wrong."""
    why = problem(value)
    if why:
        raise ValueError(why)
    return value
