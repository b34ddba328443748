"""``abook user add|passwd|set|roles|show|list``: CRM users, their passwords, settings and roles.

Passwords come from ``--password-stdin`` (one line) or a prompt on the terminal (asked twice), are hashed
by ``abook/passwords.py`` and never printed, logged or echoed; neither is their hash.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any, Callable, Iterable, TypeVar

from abook.cli.common import config_of, open_store
from abook.cli.settings_help import contacts_book_note, describe
from abook.errors import UserError
from abook.passwords import hash_password
from abook.store import settings, users
from abook.store.users import UserInfo

T = TypeVar("T")


def in_store(args: argparse.Namespace, fn: Callable[..., T], *a: Any, **kw: Any) -> T:
    """Run ``fn(session, *a, **kw)`` in one transaction on the configured store."""
    store = open_store(config_of(args))
    try:
        with store.transaction() as session:
            return fn(session, *a, **kw)
    finally:
        store.dispose()


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("user", parents=[common], help="CRM users: add them, set passwords, settings and roles")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    a = actions.add_parser("add", parents=[common], help="add a user to a business unit",
                           formatter_class=argparse.RawDescriptionHelpFormatter, description=ADD_DESCRIPTION)
    a.add_argument("name", help="the user name people bind with (the CRM domainname)")
    a.add_argument("--bu", required=True, metavar="UNIT", help="the user's business unit (name or id)")
    a.add_argument("--first", metavar="NAME", help="first name")
    a.add_argument("--last", metavar="NAME", help="last name")
    a.add_argument("--email", metavar="ADDRESS", help="internal email address (primary email of the Users book)")
    a.add_argument("--role", action="append", default=[], metavar="ROLE",
                   help="a security role to grant (repeatable); without one the user sees empty address books")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    a.set_defaults(func=user_add)

    a = actions.add_parser("passwd", parents=[common], help="set a user's password")
    a.add_argument("name", help="user name, id or email")
    a.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    a.set_defaults(func=user_passwd)

    add_settings_parser(actions, common, "user", settings.SETTINGS, user_set)

    a = actions.add_parser("roles", parents=[common], help="grant or revoke security roles")
    a.add_argument("name", help="user name, id or email")
    a.add_argument("--grant", action="append", default=[], metavar="ROLE", help="a role to grant (repeatable)")
    a.add_argument("--revoke", action="append", default=[], metavar="ROLE", help="a role to revoke (repeatable)")
    a.set_defaults(func=user_roles)

    a = actions.add_parser("show", parents=[common], help="show a user, their settings and what their Contacts "
                                                          "book shows")
    a.add_argument("name", help="user name, id or email")
    a.set_defaults(func=user_show)

    a = actions.add_parser("list", parents=[common], help="list users (and warn about users without a role)")
    a.set_defaults(func=user_list)


ADD_DESCRIPTION = f"""Add an active user to a business unit, with the next tracking number.

Security roles decide what each address book shows. A user without a role can bind but sees every
book empty: grant one with --role (or later with `abook user roles NAME --grant ROLE`); `abook role
list` shows the roles, `abook role add-standard` adds the CRM's standard ones.

The Contacts book also depends on two per-user settings (`abook user set`, shown by `abook user show`):
{describe(("address_book_matching", "local_filter_scope", "local_filter_ldap", "local_filter_include_inactive"))}
So a new user's Contacts book shows only the active contacts they own, even with an organisation-wide
role, until `abook user set NAME address_book_matching=all` (or a wider local_filter_scope)."""


def add_settings_parser(actions: Any, common: argparse.ArgumentParser, noun: str, keys: Iterable[str],
                        func: Callable[[argparse.Namespace], int]) -> None:
    """``abook NOUN set NAME key=value ...``, its help listing the keys, their values and defaults."""
    keys = tuple(keys)
    a = actions.add_parser("set", parents=[common], help=f"change a {noun}'s settings: key=value ...",
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description=f"Change a {noun}'s settings. The keys:\n{describe(keys)}")
    a.add_argument("name", help=f"{noun} name, id or email")
    a.add_argument("settings", nargs="+", metavar="key=value", help="a setting and its new value (see above)")
    a.set_defaults(func=func)


def read_password(args: argparse.Namespace, *, required: bool) -> str | None:
    """The new password: a line of standard input, or asked twice on the terminal; None if not given."""
    if args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UserError("no password on standard input")
        return password
    if sys.stdin.isatty():
        first = getpass.getpass("New password: " if required else "Password (empty for none): ")
        if not first and not required:
            return None
        if first != getpass.getpass("Retype the password: "):
            raise UserError("the two passwords differ; nothing changed")
        if not first:
            raise UserError("an empty password cannot be set")
        return first
    if required:
        raise UserError("standard input is not a terminal: give the password on it with --password-stdin")
    return None


def user_add(args: argparse.Namespace) -> int:
    password = read_password(args, required=False)
    password_hash = hash_password(password) if password else None
    info = in_store(args, users.create_user_txn, args.name, args.bu, firstname=args.first, lastname=args.last,
                    email=args.email, password_hash=password_hash, roles=args.role)
    print(f"added user {info.domainname} ({info.id}) to {info.business_unit}, tracking number "
          f"{info.tracking_number}" + ("" if info.has_password else "; no password set")
          + (f"; roles {', '.join(info.roles)}" if info.roles else ""))
    if not info.roles:
        warn_no_role([info.domainname])
    return 0


def warn_no_role(names: list[str]) -> None:
    """The warning for users who can bind but see every address book empty."""
    if len(names) == 1:
        who = f"{names[0]} has no security role"
        fix = f"`abook user roles {names[0]} --grant ROLE`"
    else:
        who = f"{len(names)} users have no security role ({', '.join(names)})"
        fix = "`abook user roles NAME --grant ROLE`"
    print(f"warning: {who}: they can bind but see every address book empty; grant one with {fix} "
          "(`abook role list`; `abook role add-standard` adds the CRM's standard roles)", file=sys.stderr)


def user_passwd(args: argparse.Namespace) -> int:
    info = in_store(args, users.user_info_txn, args.name)  # an unknown user fails before the prompt
    password = read_password(args, required=True)
    assert password is not None
    in_store(args, users.set_password_hash_txn, args.name, hash_password(password))
    print(f"password changed for {info.domainname}")
    return 0


def user_set(args: argparse.Namespace) -> int:
    changes = settings.parse_settings(args.settings)
    info = in_store(args, users.update_settings_txn, args.name, changes)
    shown = dict(_show_lines(info))
    print(f"updated {info.domainname}: " + ", ".join(f"{k}={shown.get(k, changes[k])}" for k in changes))
    return 0


def user_roles(args: argparse.Namespace) -> int:
    if not args.grant and not args.revoke:
        raise UserError("nothing to do: give --grant ROLE or --revoke ROLE")
    info = in_store(args, users.change_roles_txn, args.name, args.grant, args.revoke)
    print(f"{info.domainname}: roles {', '.join(info.roles) or '(none)'}")
    return 0


def user_show(args: argparse.Namespace) -> int:
    info = in_store(args, users.user_info_txn, args.name)
    for key, value in _show_lines(info):
        print(f"{key + ':':<31} {value}")
    print()
    print(contacts_book_note(info.domainname, info.address_book_matching, info.local_filter_scope,
                             info.local_filter_ldap, info.local_filter_include_inactive))
    if not info.roles:
        warn_no_role([info.domainname])
    return 0


def _show_lines(info: UserInfo) -> list[tuple[str, str]]:
    return [
        ("user", info.domainname),
        ("id", info.id),
        ("name", info.fullname),
        ("email", info.email or "(none)"),
        ("firstname", info.firstname or "(none)"),
        ("lastname", info.lastname or "(none)"),
        ("business unit", f"{info.business_unit} ({info.business_unit_id})"),
        ("statecode", "active" if info.active else "inactive"),
        ("password", "set" if info.has_password else "not set"),
        ("tracking number", str(info.tracking_number) if info.tracking_number is not None else "(none)"),
        ("roles", ", ".join(info.roles) or "(none)"),
        ("address_book_matching", info.address_book_matching),
        ("local_filter_scope", info.local_filter_scope),
        ("local_filter_ldap", info.local_filter_ldap or "none"),
        ("local_filter_include_inactive", "yes" if info.local_filter_include_inactive else "no"),
        ("tracking_option", info.tracking_option),
        ("incoming_method", info.incoming_method),
        ("outgoing_method", info.outgoing_method),
    ]


def print_table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())


def user_list(args: argparse.Namespace) -> int:
    found = in_store(args, users.list_users_txn)
    if not found:
        print("no users yet: `abook user add NAME --bu UNIT` adds one")
        return 0
    rows = [
        (u.domainname, u.fullname, u.email or "-", u.business_unit, "active" if u.active else "inactive",
         str(u.tracking_number or "-"), ", ".join(u.roles) or "(none)")
        for u in found
    ]
    print_table(("USER", "NAME", "EMAIL", "BUSINESS UNIT", "STATE", "TRACKING", "ROLES"), rows)
    roleless = [u.domainname for u in found if not u.roles and u.active]
    if roleless:
        warn_no_role(roleless)
    return 0
