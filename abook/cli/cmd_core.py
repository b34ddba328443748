"""``abook check-config``, ``abook init`` and ``abook serve``."""

from __future__ import annotations

import argparse
from typing import Any

from abook.cli.common import config_of, open_store
from abook.config import load_config
from abook.errors import UserError
from abook.store import schema


def register(sub: Any, common: argparse.ArgumentParser) -> None:
    p = sub.add_parser("check-config", parents=[common], help="validate the config file and exit")
    p.add_argument("file", nargs="?", help="config file to check (default: -c)")
    p.set_defaults(func=check_config)

    p = sub.add_parser("init", parents=[common], help="create or migrate the store")
    p.add_argument("--standard-roles", action="store_true",
                   help="also add the CRM's standard security roles the store lacks (as `abook role add-standard`)")
    p.set_defaults(func=init)

    p = sub.add_parser("serve", parents=[common], help="run the daemon in the foreground")
    p.set_defaults(func=serve)

    # internal, so no help= (that keeps it out of `abook --help`): the daemon starts these when ldap.workers > 1
    p = sub.add_parser("ldap-worker", parents=[common],
                       description="(internal) an LDAP worker process; the daemon starts these when ldap.workers > 1")
    p.add_argument("--index", type=int, required=True, help="the worker's number, 1 to workers - 1")
    p.add_argument("--listener", action="append", default=[], metavar="FD:FAMILY:KIND",
                   help="an inherited listening socket, e.g. 3:INET:plain or 4:INET:tls (repeatable)")
    p.set_defaults(func=ldap_worker)


def check_config(args: argparse.Namespace) -> int:
    if args.file:
        args.config = args.file
    config = config_of(args)
    if config.tracking.queue_owner:
        _check_in_store(config, str(args.config))
    replicas = f" with {len(config.store.read_urls)} read replica(s)" if config.store.read_urls else ""
    print(f"{args.config}: OK (store {config.store_url.split('://', 1)[0]}{replicas}, "
          f"LDAP on {', '.join(config.ldap.listen + config.ldap.listen_tls)})")
    return 0


def _check_in_store(config: Any, file: str) -> None:
    """What only the store can tell (``tracking.queue_owner`` names an active user), when the store exists;
    a store not created yet (before ``abook init``) has nothing to check against."""
    from abook.store.owners import check_queue_owner_txn

    store = open_store(config, check=False)
    try:
        try:
            current = schema.current_revision(store.engine)
        except UserError as e:  # the store cannot be reached: the file itself is still checked
            print(f"{file}: tracking.queue_owner not checked: {e}")
            return
        if current != schema.HEAD:
            print(f"{file}: tracking.queue_owner not checked: the store is not at this abook's schema (abook init)")
            return
        with store.transaction() as session:
            check_queue_owner_txn(session, config.tracking.queue_owner, file)
    finally:
        store.dispose()


def init(args: argparse.Namespace) -> int:
    config = config_of(args)
    store = open_store(config, check=False)
    before = schema.current_revision(store.engine)
    schema.upgrade(store.engine)
    after = schema.current_revision(store.engine)
    print(f"store at revision {after}" + (" (unchanged)" if before == after else f" (was {before or 'empty'})"))
    try:
        if args.standard_roles:
            from abook.cli.cmd_org import print_added_standard_roles
            from abook.store.standard_roles import add_standard_roles_txn

            with store.transaction() as session:
                print_added_standard_roles(*add_standard_roles_txn(session))
    finally:
        store.dispose()
    return 0


def serve(args: argparse.Namespace) -> int:
    from abook.tap import run_daemon

    # run_daemon parses the endpoints once it has decided whether pyOpenSSL may load (config/endpoints.py)
    return run_daemon(load_config(args.config, endpoints=False))


def ldap_worker(args: argparse.Namespace) -> int:
    from abook.server.workers.adopt import InheritedListener
    from abook.tap import run_worker

    inherited = [InheritedListener.decode(text) for text in args.listener]
    return run_worker(load_config(args.config, endpoints=False), inherited, args.index)



