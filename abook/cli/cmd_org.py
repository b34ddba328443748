"""``abook bu add|list`` and ``abook role add|set|list``: build an organisation from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from abook.cli.cmd_user import in_store, print_table
from abook.store import users
from abook.store.models import ENTITIES, ReadDepth
from abook.store.users import RoleInfo

_DEPTHS = ", ".join(d.name for d in ReadDepth)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bu", help="business units: the tree users and records belong to")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[common], help="add a business unit")
    a.add_argument("name")
    a.add_argument("--parent", metavar="P", help="the parent unit (name or id); default: the organisation's root")
    a.set_defaults(func=bu_add)
    a = actions.add_parser("list", parents=[common], help="show the business unit tree")
    a.set_defaults(func=bu_list)

    p = sub.add_parser("role", help="security roles: a read depth per entity")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    read_help = f"entity=depth; entity one of all, {', '.join(ENTITIES)}; depth one of {_DEPTHS}"
    a = actions.add_parser("add", parents=[common], help="add a role (entities not named get none)")
    a.add_argument("name")
    a.add_argument("--read", action="append", default=[], metavar="ENTITY=DEPTH", help=read_help)
    a.set_defaults(func=role_add)
    a = actions.add_parser("set", parents=[common], help="change read depths of a role")
    a.add_argument("name")
    a.add_argument("--read", action="append", default=[], metavar="ENTITY=DEPTH", help=read_help, required=True)
    a.set_defaults(func=role_set)
    a = actions.add_parser("list", parents=[common], help="list roles and their read depths")
    a.set_defaults(func=role_list)


def bu_add(args: argparse.Namespace) -> int:
    unit = in_store(args, users.add_business_unit_txn, args.name, args.parent)
    where = f"under {unit.parent}" if unit.parent else "as the organisation's root"
    print(f"added business unit {unit.name} ({unit.id}) {where}")
    return 0


def bu_list(args: argparse.Namespace) -> int:
    for unit in in_store(args, users.list_business_units_txn):
        print(f"{'  ' * unit.level}{unit.name}  ({unit.id})")
    return 0


def _depths(role: RoleInfo) -> str:
    return " ".join(f"{entity}={depth.name}" for entity, depth in role.depths)


def role_add(args: argparse.Namespace) -> int:
    role = in_store(args, users.add_role_txn, args.name, users.parse_depths(args.read))
    print(f"added role {role.name}: {_depths(role)}")
    return 0


def role_set(args: argparse.Namespace) -> int:
    role = in_store(args, users.set_role_depths_txn, args.name, users.parse_depths(args.read))
    print(f"changed role {role.name}: {_depths(role)}")
    return 0


def role_list(args: argparse.Namespace) -> int:
    print_table(("ROLE", *(e.upper() for e in ENTITIES)),
                [(r.name, *(d.name for _e, d in r.depths)) for r in in_store(args, users.list_roles_txn)])
    return 0
