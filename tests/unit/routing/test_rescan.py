"""Users and queues switched to incoming method router get a poller without a restart (template)."""

from __future__ import annotations

from sqlalchemy import select, update

from abook.store.models import MailboxState, Queue, SystemUser
from tests.unit.routing.conftest import message

TEMPLATE = {"user_mailbox_template": {"type": "imap", "host": "127.0.0.1", "security": "none",
                                      "username": "{email}", "interval": 60.0},
            "rescan_interval": 60.0}


def test_router_users_are_picked_up_and_dropped_by_the_rescan(store, org, make_router, tmp_path) -> None:
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    (secrets / "jane@example.com").write_text("jane-pw\n")
    router = make_router([], router={**TEMPLATE, "user_mailbox_template": {
        **TEMPLATE["user_mailbox_template"], "password_dir": str(secrets)}})
    assert sorted(router.service.pollers) == ["auto:jane.doe"]
    jane = router.service.pollers["auto:jane.doe"].mailbox
    assert (jane.username, jane.password.reveal(), jane.owner) == ("jane@example.com", "jane-pw", "jane.doe")
    router.sources["auto:jane.doe"].deliver(message(1))
    router.advance(60)
    with store.transaction() as s:
        assert s.get(MailboxState, "auto:jane.doe").messages_tracked == 1
        # an admin switches bob and the support queue to the router, and jane away from it
        s.execute(update(SystemUser).where(SystemUser.domainname == "bob").values(incoming_method="router"))
        s.execute(update(Queue).values(incoming_method="router"))
        s.execute(update(SystemUser).where(SystemUser.domainname == "jane.doe").values(incoming_method="client"))
    router.advance(60)
    assert sorted(router.service.pollers) == ["auto:bob", "auto:queue:support@example.com"]
    assert router.service.pollers["auto:bob"].mailbox.password is None  # no secret file, no service account
    router.sources["auto:queue:support@example.com"].deliver(message(2, to="support@example.com"))
    router.advance(60)
    with store.transaction() as s:
        row = s.get(MailboxState, "auto:queue:support@example.com")
        assert (row.owner_type, row.owner_id, row.messages_tracked) == ("queue", org.support, 1)
    router.stop()


def test_the_template_username_takes_the_placeholders_bind_dn_takes(store, org, make_router) -> None:
    """One vocabulary with ldap.upstream.bind_dn: {username}, {mail} and {id} (a queue's {username} is its
    address); the template's {user} and {email} still work. {username} was a KeyError at every rescan."""
    with store.transaction() as s:
        s.execute(update(Queue).values(incoming_method="router"))
    for template, jane, support in [
        ("{username}/{id}", f"jane.doe/{org.jane}", f"support@example.com/{org.support}"),
        ("{mail}", "jane@example.com", "support@example.com"),
        ("{user}:{email}", "jane.doe:jane@example.com", "support@example.com:support@example.com"),
    ]:
        router = make_router([], router={**TEMPLATE, "user_mailbox_template": {
            **TEMPLATE["user_mailbox_template"], "username": template}})
        pollers = router.service.pollers
        assert sorted(pollers) == ["auto:jane.doe", "auto:queue:support@example.com"], template
        assert (pollers["auto:jane.doe"].mailbox.username,
                pollers["auto:queue:support@example.com"].mailbox.username) == (jane, support)
        router.stop()


def test_a_configured_mailbox_wins_over_the_template(store, org, make_router) -> None:
    jane = {"name": "jane", "type": "imap", "owner": "jane.doe", "interval": 60.0}
    router = make_router([jane], router=TEMPLATE)
    assert sorted(router.service.pollers) == ["jane"]
    router.stop()


def test_exchange_template_reads_each_users_own_address_with_one_service_account() -> None:
    from abook.config import parse_config
    from abook.routing.pollers import derive_mailboxes_blocking
    from abook.store.owners import RouterOwner

    config = parse_config({"router": {"user_mailbox_template": {
        "type": "ews", "username": "CORP\\\\crm-svc", "password": "svc-pw",
        "ews": {"service_endpoint": "https://mail.example.com/EWS/Exchange.asmx"}}}})
    template = config.router.user_mailbox_template
    (jane,) = derive_mailboxes_blocking(template, (RouterOwner("jane.doe", "jane@example.com"),))
    assert (jane.name, jane.type, jane.username, jane.password.reveal()) == (
        "auto:jane.doe", "ews", "CORP\\\\crm-svc", "svc-pw")
    assert (jane.ews.primary_smtp_address, jane.ews.access_type) == ("jane@example.com", "impersonation")


def test_exchange_template_needs_its_ews_table() -> None:
    import pytest

    from abook.config import parse_config
    from abook.errors import ConfigError

    with pytest.raises(ConfigError, match=r"router.user_mailbox_template.ews: type \"ews\" needs a"):
        parse_config({"router": {"user_mailbox_template": {"type": "ews"}}})


def test_graph_template_reads_each_users_own_mailbox_with_one_app_registration(monkeypatch) -> None:
    from abook.config import parse_config
    from abook.routing.pollers import derive_mailboxes_blocking
    from abook.store.owners import RouterOwner

    monkeypatch.setenv("ABOOK_TEST_GRAPH_SECRET", "s3cret~from-env")
    config = parse_config({"router": {"user_mailbox_template": {
        "type": "graph", "graph": {"tenant": "contoso.onmicrosoft.com", "client_id": "6a7b8c9d-1234-4000-8000-0000000ab00c",
                                   "client_secret": "env:ABOOK_TEST_GRAPH_SECRET"}}}})
    template = config.router.user_mailbox_template
    jane, queue = derive_mailboxes_blocking(template, (RouterOwner("jane.doe", "jane@example.com"),
                                                       RouterOwner("queue:support@example.com", "support@example.com")))
    assert (jane.type, jane.graph.mailbox, queue.graph.mailbox) == ("graph", "jane@example.com", "support@example.com")
    assert jane.graph.client_secret.reveal() == "s3cret~from-env" and jane.graph.tenant == "contoso.onmicrosoft.com"


def test_graph_template_needs_its_graph_table() -> None:
    import pytest

    from abook.config import parse_config
    from abook.errors import ConfigError

    with pytest.raises(ConfigError, match=r"router.user_mailbox_template.graph: type \"graph\" needs a"):
        parse_config({"router": {"user_mailbox_template": {"type": "graph"}}})
