"""``abook mailbox deploy-rule --user U | --queue Q | --all [--remove] [--dry-run] [--to ADDRESS]``.

Puts the forward-as-attachment rule (``mailbox/graph_rules.py``) in each mailbox whose mail the forward
mailbox must receive: a user's (by user name), a queue's (by address or name), or with ``--all`` every
active user and queue whose incoming method is ``forward``. The forward mailbox's address is ``--to``,
else that of the ``[[mailboxes]]`` table with role "forward" and type "graph" or "ews".

With a forward mailbox of type "ews" (on-premises Exchange) the rules are written through EWS by its
service account, impersonating each user (``mailbox/ews_rules.py``); otherwise through Graph, with the
forward mailbox's app registration, else ``[router.user_mailbox_template.graph]``, else ``[smtp.graph]``.
"""

from __future__ import annotations

import argparse
import threading
from typing import Any, Optional

from abook.cli.common import config_of, in_store
from abook.config import AbookConfig
from abook.config.mail import GraphApp, MailboxConfig
from abook.errors import NotFound, UserError
from abook.mailbox.errors import MailboxError
from abook.store.owners import forward_rule_targets_txn

class GraphUnusable(UserError):
    """Graph could not be asked at all (the message names why; never the secret)."""


VERBS = {"create": ("created", "would create"), "repair": ("repaired", "would repair"),
         "remove": ("removed", "would remove"), "keep": ("unchanged", "unchanged"), "error": ("FAILED", "FAILED")}


def register(msub: Any, common: argparse.ArgumentParser) -> None:
    d = msub.add_parser("deploy-rule", parents=[common],
                        help="create, repair or remove the rule forwarding a mailbox's mail to the forward mailbox "
                             "(Exchange Online, through Graph)")
    who = d.add_mutually_exclusive_group(required=True)
    who.add_argument("--user", help="a CRM user name")
    who.add_argument("--queue", help="a queue's email address or name")
    who.add_argument("--all", action="store_true", help="every active user and queue with incoming method forward")
    d.add_argument("--remove", action="store_true", help="remove the rule instead")
    d.add_argument("--dry-run", action="store_true", help="list what would change, change nothing")
    d.add_argument("--to", help="the forward mailbox's address (default: the graph forward mailbox's)")
    d.set_defaults(func=deploy_rule)


def _graph_app(config: AbookConfig) -> tuple[GraphApp, Optional[str], float]:
    for m in config.mailboxes:
        if m.role == "forward" and m.graph is not None:
            return m.graph, m.ca_file, m.timeout
    template = config.router.user_mailbox_template
    if template is not None and template.graph is not None:
        return template.graph, template.ca_file, template.timeout
    if config.smtp is not None and config.smtp.graph is not None:
        return config.smtp.graph, config.smtp.ca_file, config.smtp.timeout
    raise NotFound("no Graph app registration configured: a forward [[mailboxes]] table of type graph, "
                   "[router.user_mailbox_template.graph] or [smtp.graph]")


def _forward_address(config: AbookConfig, given: Optional[str]) -> str:
    if given:
        return given
    for m in config.mailboxes:
        if m.role == "forward" and m.graph is not None:
            return m.graph.mailbox
        if m.role == "forward" and m.ews is not None:
            return m.ews.primary_smtp_address
    raise NotFound("give --to ADDRESS: no [[mailboxes]] table with role forward and type graph or ews names it")


def _ews_forward(config: AbookConfig) -> Optional[MailboxConfig]:
    """The forward mailbox when it is on Exchange through EWS: its service account reaches the users' rules."""
    return next((m for m in config.mailboxes if m.role == "forward" and m.ews is not None), None)


def deploy_rule(args: argparse.Namespace) -> int:
    config = config_of(args)
    mailboxes = in_store(config, forward_rule_targets_txn, args.user, args.queue)
    forward_to = _forward_address(config, args.to)
    ews = _ews_forward(config)
    if ews is not None:
        from abook.mailbox.ews import EwsSource
        from abook.mailbox.ews_rules import deploy

        changes = deploy(EwsSource(ews), mailboxes, forward_to, args.remove, args.dry_run)
    else:
        changes = _through_graph(config, mailboxes, forward_to, args)
    for change in changes:
        verb = VERBS[change.action][1 if args.dry_run else 0]
        print(f"{change.mailbox}: {verb}" + (f" ({change.detail})" if change.detail else ""))
    if not mailboxes:
        print("no mailbox to change")
    return 1 if any(c.action == "error" for c in changes) else 0


#: ``abook status``'s word for what a mailbox's rule needs
STATES = {"keep": "in place", "create": "missing", "repair": "differs", "error": "cannot read"}


def rule_states(config: AbookConfig) -> Optional[list[tuple[str, str]]]:
    """For ``abook status``: (mailbox, state) of the forwarding rule of every active user and queue with
    incoming method forward, read as ``deploy-rule --all --dry-run`` reads it; None when no forward mailbox
    on Graph or EWS is configured (nothing to deploy the rule to)."""
    if not any(m.role == "forward" and (m.graph is not None or m.ews is not None) for m in config.mailboxes):
        return None
    mailboxes = in_store(config, forward_rule_targets_txn, None, None)
    if not mailboxes:
        return []
    forward_to = _forward_address(config, None)
    ews = _ews_forward(config)
    args = argparse.Namespace(remove=False, dry_run=True)
    if ews is not None:
        from abook.mailbox.ews import EwsSource
        from abook.mailbox.ews_rules import deploy

        changes = deploy(EwsSource(ews), mailboxes, forward_to, False, True)
    else:
        changes = _through_graph(config, mailboxes, forward_to, args)
    return [(c.mailbox, STATES[c.action] + (f" ({c.detail})" if c.action in ("repair", "error") and c.detail else ""))
            for c in changes]


def _through_graph(config: AbookConfig, mailboxes: list[str], forward_to: str, args: argparse.Namespace) -> list[Any]:
    from abook.mailbox import graph_rules
    from abook.mailbox.graph_client import GraphClient, auth_for

    app, ca_file, timeout = _graph_app(config)
    client = GraphClient(auth_for(app, ca_file, timeout), "deploy-rule", threading.Event().wait)
    try:
        changes = graph_rules.plan(client, mailboxes, forward_to, args.remove)
        if not args.dry_run:
            changes = graph_rules.apply(client, changes, forward_to)
    except MailboxError as e:  # sign-in refused, Graph unreachable or throttling: a rerun completes the rest
        raise GraphUnusable(str(e)) from None
    return changes
