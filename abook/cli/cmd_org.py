"""``abook bu add|list``, ``abook role add|set|list`` and ``abook queue add|set|list``: build an
organisation from the command line."""

from __future__ import annotations

import argparse
from typing import Any

from abook.cli.cmd_user import add_settings_parser, in_store, print_table
from abook.store import org, settings
from abook.store.models import ENTITIES, ReadDepth
from abook.store.org import QueueInfo, RoleInfo

_DEPTHS = ", ".join(d.name for d in ReadDepth)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bu", parents=[common], help="business units: the tree users and records belong to")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[common], help="add a business unit")
    a.add_argument("name")
    a.add_argument("--parent", metavar="P", help="the parent unit (name or id); default: the organisation's root")
    a.set_defaults(func=bu_add)
    a = actions.add_parser("list", parents=[common], help="show the business unit tree")
    a.set_defaults(func=bu_list)

    p = sub.add_parser("role", parents=[common], help="security roles: a read depth per entity")
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

    p = sub.add_parser("queue", parents=[common], help="queues: shared mailboxes owned by a business unit")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[common], help="add a queue")
    a.add_argument("name")
    a.add_argument("--bu", required=True, metavar="BUNAME", help="the owning business unit (name or id)")
    a.add_argument("--email", metavar="E", help="the queue's email address")
    a.set_defaults(func=queue_add)
    add_settings_parser(actions, common, "queue", settings.QUEUE_SETTINGS, queue_set)
    a = actions.add_parser("list", parents=[common], help="list queues and their mail settings")
    a.set_defaults(func=queue_list)


def bu_add(args: argparse.Namespace) -> int:
    unit = in_store(args, org.add_business_unit_txn, args.name, args.parent)
    where = f"under {unit.parent}" if unit.parent else "as the organisation's root"
    print(f"added business unit {unit.name} ({unit.id}) {where}")
    return 0


def bu_list(args: argparse.Namespace) -> int:
    for unit in in_store(args, org.list_business_units_txn):
        print(f"{'  ' * unit.level}{unit.name}  ({unit.id})")
    return 0


def _depths(role: RoleInfo) -> str:
    return " ".join(f"{entity}={depth.name}" for entity, depth in role.depths)


def role_add(args: argparse.Namespace) -> int:
    role = in_store(args, org.add_role_txn, args.name, settings.parse_depths(args.read))
    print(f"added role {role.name}: {_depths(role)}")
    return 0


def role_set(args: argparse.Namespace) -> int:
    role = in_store(args, org.set_role_depths_txn, args.name, settings.parse_depths(args.read))
    print(f"changed role {role.name}: {_depths(role)}")
    return 0


def role_list(args: argparse.Namespace) -> int:
    print_table(("ROLE", *(e.upper() for e in ENTITIES)),
                [(r.name, *(d.name for _e, d in r.depths)) for r in in_store(args, org.list_roles_txn)])
    return 0


def _queue_row(q: QueueInfo) -> tuple[str, ...]:
    return (q.name, q.email or "-", q.business_unit, "active" if q.active else "inactive", q.tracking_option,
            q.incoming_method, q.outgoing_method)


_QUEUE_HEADER = ("QUEUE", "EMAIL", "BUSINESS UNIT", "STATE", "TRACKING", "INCOMING", "OUTGOING")


def queue_add(args: argparse.Namespace) -> int:
    queue = in_store(args, org.create_queue_txn, args.name, args.bu, args.email)
    print(f"added queue {queue.name} ({queue.id}) to {queue.business_unit}")
    return 0


def queue_set(args: argparse.Namespace) -> int:
    changes = settings.parse_settings(args.settings, settings.QUEUE_SETTINGS)
    queue = in_store(args, org.update_queue_settings_txn, args.name, changes)
    print_table(_QUEUE_HEADER, [_queue_row(queue)])
    return 0


def queue_list(args: argparse.Namespace) -> int:
    print_table(_QUEUE_HEADER, [_queue_row(q) for q in in_store(args, org.list_queues_txn)])
    return 0
