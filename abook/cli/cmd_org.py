"""``abook bu add|list|rename|move|delete``, ``abook role add|set|list|add-standard`` and
``abook queue add|set|list``: build an organisation from the command line, and reshape it."""

from __future__ import annotations

import argparse
from typing import Any

from abook.cli.cmd_user import add_settings_parser, in_store, print_table
from abook.store import org, settings, standard_roles, units
from abook.store.enums import ENTITIES, ReadDepth
from abook.store.org import QueueInfo, RoleInfo

_DEPTHS = ", ".join(d.name for d in ReadDepth)


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("bu", parents=[common], help="business units: the tree users and records belong to")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[common], help="add a business unit")
    a.add_argument("name", help="the unit's name")
    a.add_argument("--parent", metavar="UNIT", help="the parent unit (name or id); default: the organisation's "
                                                    "root (the first unit added becomes the root)")
    a.set_defaults(func=bu_add)
    a = actions.add_parser("list", parents=[common], help="show the business unit tree")
    a.set_defaults(func=bu_list)
    a = actions.add_parser("rename", parents=[common], help="rename a business unit")
    a.add_argument("name", help="the unit (name or id)")
    a.add_argument("new_name", help="its new name")
    a.set_defaults(func=bu_rename)
    a = actions.add_parser("move", parents=[common], help="put a business unit under another one, or make it the root",
                           description="Move a unit, with everything below it, under another unit (never under "
                                       "itself or a unit below it). With --root the unit becomes the organisation's "
                                       "root and the old root goes under it: how a unit added under the wrong "
                                       "root becomes the organisation.")
    a.add_argument("name", help="the unit (name or id)")
    where = a.add_mutually_exclusive_group(required=True)
    where.add_argument("--parent", metavar="UNIT", help="the new parent unit (name or id)")
    where.add_argument("--root", action="store_true", help="make it the root; the old root goes under it")
    a.set_defaults(func=bu_move)
    a = actions.add_parser("delete", parents=[common], help="delete a business unit, moving what it holds",
                           description="Delete a unit. What it holds (units below it, users, queues, facilities, "
                                       "roles, and the owning unit of records and activities) moves to the unit "
                                       "given with --to first; without --to only an empty unit is deleted. The "
                                       "root is never deleted.")
    a.add_argument("name", help="the unit (name or id)")
    a.add_argument("--to", metavar="UNIT", help="the unit that takes over everything the deleted one holds")
    a.set_defaults(func=bu_delete)

    p = sub.add_parser("role", parents=[common], help="security roles: a read depth per entity")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    read_help = (f"ENTITY is all or one of {', '.join(ENTITIES)}; DEPTH one of {_DEPTHS} (repeatable; a later "
                 "one wins for the same entity)")
    a = actions.add_parser("add", parents=[common], help="add a role (entities not named get none)")
    a.add_argument("name", help="the role's name")
    a.add_argument("--read", action="append", default=[], metavar="ENTITY=DEPTH", help=read_help)
    a.set_defaults(func=role_add)
    a = actions.add_parser("set", parents=[common], help="change read depths of a role")
    a.add_argument("name", help="the role's name or id")
    a.add_argument("--read", action="append", default=[], metavar="ENTITY=DEPTH", help=read_help, required=True)
    a.set_defaults(func=role_set)
    a = actions.add_parser("list", parents=[common], help="list roles and their read depths")
    a.set_defaults(func=role_list)
    a = actions.add_parser("add-standard", parents=[common], help="add the CRM's standard roles the store lacks",
                           description="Add the security roles the CRM installs (System Administrator, Sales "
                                       "Manager, Salesperson, ...), reduced to read depths over abook's entities; "
                                       "roles of those names that exist are left as they are. `abook role list` "
                                       "shows them; `abook role set` changes them.")
    a.set_defaults(func=role_add_standard)

    p = sub.add_parser("queue", parents=[common], help="queues: shared mailboxes owned by a business unit")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("add", parents=[common], help="add a queue")
    a.add_argument("name", help="the queue's name")
    a.add_argument("--bu", required=True, metavar="UNIT", help="the owning business unit (name or id)")
    a.add_argument("--email", metavar="ADDRESS", help="the queue's email address")
    a.set_defaults(func=queue_add)
    add_settings_parser(actions, common, "queue", settings.QUEUE_SETTINGS, queue_set)
    a = actions.add_parser("list", parents=[common], help="list queues and their mail settings")
    a.set_defaults(func=queue_list)


def bu_add(args: argparse.Namespace) -> int:
    unit = in_store(args, org.add_business_unit_txn, args.name, args.parent)
    where = f"under {unit.parent}" if unit.parent else \
        "as the organisation's root (units added without --parent go under it)"
    print(f"added business unit {unit.name} ({unit.id}) {where}")
    return 0


def bu_list(args: argparse.Namespace) -> int:
    units = in_store(args, org.list_business_units_txn)
    if not units:
        print("no business units yet: `abook bu add NAME` adds the first, the organisation's root")
    for unit in units:
        print(f"{'  ' * unit.level}{unit.name}  ({unit.id})")
    return 0


def bu_rename(args: argparse.Namespace) -> int:
    old, unit = in_store(args, units.rename_business_unit_txn, args.name, args.new_name)
    print(f"renamed business unit {old} to {unit.name} ({unit.id})")
    return 0


def bu_move(args: argparse.Namespace) -> int:
    if args.root:
        unit, below = in_store(args, units.make_root_txn, args.name)
        print(f"{unit.name} is now the organisation's root" + (f"; {', '.join(below)} went under it" if below else ""))
        return 0
    unit = in_store(args, units.move_business_unit_txn, args.name, args.parent)
    print(f"moved business unit {unit.name} under {unit.parent}")
    return 0


def bu_delete(args: argparse.Namespace) -> int:
    done = in_store(args, units.delete_business_unit_txn, args.name, args.to)
    moved = ", ".join(f"{n} {what}" for what, n in done.moved)
    print(f"deleted business unit {done.name}" + (f"; moved {moved} to {done.to}" if moved else ""))
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
    roles = in_store(args, org.list_roles_txn)
    if not roles:
        print("no roles yet: `abook role add-standard` adds the CRM's standard roles, `abook role add` your own")
        return 0
    print_table(("ROLE", *(e.upper() for e in ENTITIES)), [(r.name, *(d.name for _e, d in r.depths)) for r in roles])
    return 0


def role_add_standard(args: argparse.Namespace) -> int:
    added, present = in_store(args, standard_roles.add_standard_roles_txn)
    print_added_standard_roles(added, present)
    return 0


def print_added_standard_roles(added: tuple[RoleInfo, ...], present: tuple[str, ...]) -> None:
    if added:
        print(f"added {len(added)} standard roles: {', '.join(r.name for r in added)}")
    if present:
        print(f"already there, left as they are: {', '.join(present)}")


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
    queues = in_store(args, org.list_queues_txn)
    if not queues:
        print("no queues")
        return 0
    print_table(_QUEUE_HEADER, [_queue_row(q) for q in queues])
    return 0
