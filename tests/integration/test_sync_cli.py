"""`abook sync plan|now|status|conflicts|resolve` as an admin runs them, against a real Radicale."""

from __future__ import annotations

from pathlib import Path

import pytest

from abook.cli import main
from abook.store import Store, make_engine, models
from tests.contract.pim_harness import RadicaleMailbox
from tests.fixtures.radicale import Radicale


@pytest.fixture
def setup(radicale_server: Radicale, tmp_path: Path) -> tuple[Path, Store, RadicaleMailbox, str]:
    box = RadicaleMailbox(radicale_server)  # the user's mailbox, seen from another client
    user, password = box.user, box._session.auth[1]
    (tmp_path / "passwords").mkdir()
    (tmp_path / "passwords" / user).write_text(password + "\n")
    config = tmp_path / "abook.toml"
    config.write_text(
        f'[store]\nurl = "sqlite:///{tmp_path / "abook.sqlite3"}"\n'
        f'[sync]\nenabled = true\n[sync.conflict]\ncontact = "manual"\n'
        f'[sync.mailbox]\ntype = "dav"\ncontacts_url = "{box.collections["contact"].replace(user, "{user}")}"\n'
        f'tasks_url = "{box.collections["task"].replace(user, "{user}")}"\n'
        f'password_dir = "{tmp_path / "passwords"}"\n')
    assert main(["init", "-c", str(config)]) == 0
    store = Store(make_engine(f"sqlite:///{tmp_path / 'abook.sqlite3'}"))
    with store.transaction() as s:
        unit = models.BusinessUnit(name="Unit")
        s.add(unit)
        s.flush()
        role = models.Role(name="Own Records")
        role.privileges = [models.RolePrivilege(entity="contact", read_depth=int(models.ReadDepth.user))]
        owner = models.SystemUser(domainname=user, fullname=user, business_unit_id=unit.id, statecode=0)
        owner.roles.append(role)  # without read access to contacts, none would reach the mailbox
        s.add(owner)
        s.flush()
        contact = models.Contact(firstname="Ann", lastname="Lee", fullname="Ann Lee", owner_id=owner.id,
                                 owningbusinessunit_id=unit.id, statecode=0)
        s.add(contact)
        s.flush()
        cid = contact.id
    assert main(["user", "set", "-c", str(config), user, "sync_enabled=yes"]) == 0
    return config, store, box, cid


def test_plan_now_conflicts_resolve_status(setup: tuple, capsys: pytest.CaptureFixture[str]) -> None:
    config, store, box, cid = setup
    c = ["-c", str(config)]
    capsys.readouterr()
    assert main(["sync", "plan", *c, "--user", box.user]) == 0
    out = capsys.readouterr().out
    assert "contact: 1 action(s)" in out and f"create_mailbox  crm {cid}" in out
    assert box.values("contact") == {}  # the plan wrote nothing
    assert main(["sync", "now", *c, "--user", box.user]) == 0
    assert "contact: create_mailbox 1" in capsys.readouterr().out
    (item,) = box.values("contact")
    assert main(["sync", "now", *c, "--user", box.user]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "contact: nothing to do"

    box.user_update("contact", item, {"jobtitle": "Mailbox title"})
    with store.transaction() as s:
        s.get(models.Contact, cid).jobtitle = "CRM title"
    assert main(["sync", "now", *c, "--user", box.user]) == 0
    assert "contact: conflict 1" in capsys.readouterr().out
    assert main(["sync", "conflicts", *c]) == 0
    out = capsys.readouterr().out
    assert "jobtitle: crm 'CRM title'  mailbox 'Mailbox title'" in out and "waiting: abook sync resolve" in out
    conflict_id = out.split(":", 1)[0]
    assert main(["sync", "resolve", *c, conflict_id, "--winner", "mailbox"]) == 0
    assert main(["sync", "now", *c, "--user", box.user]) == 0
    with store.transaction() as s:
        assert s.get(models.Contact, cid).jobtitle == "Mailbox title"
    capsys.readouterr()
    assert main(["sync", "status", *c]) == 0
    out = capsys.readouterr().out
    assert box.user in out and "contact" in out and "update 1" in out
    assert main(["sync", "conflicts", *c, "--all"]) == 0
    assert "mailbox won" in capsys.readouterr().out
    store.dispose()


def test_unreachable_server_is_one_error_line(setup: tuple, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config, store, box, _ = setup
    text = config.read_text().replace(f"127.0.0.1:{box.server.port}", "127.0.0.1:9")
    config.write_text(text)
    assert main(["sync", "now", "-c", str(config), "--user", box.user]) != 0
    err = capsys.readouterr().err
    assert "Unavailable" in err or "ConnectionError" in err or "127.0.0.1:9" in err
    assert box._session.auth[1] not in err  # no secret in the message
    store.dispose()
