"""The admin's documents hold together: a page per mail client, linked from the overview, every relative
link in them and in the README's links to them pointing at a file that exists."""

from __future__ import annotations

import re

from tests.helpers import REPO

CLIENTS = ("thunderbird", "outlook", "apple", "evolution", "mutt-lbdb", "roundcube")
LINK = re.compile(r"\]\(([^)#\s]+)(#[^)]*)?\)")


def test_a_page_per_mail_client_linked_from_the_overview() -> None:
    overview = (REPO / "docs" / "mail-clients" / "README.md").read_text()
    for client in CLIENTS:
        assert (REPO / "docs" / "mail-clients" / f"{client}.md").is_file(), client
        assert f"]({client}.md)" in overview, client
    assert "sends the user's CRM password in the clear" in overview and "require_tls_for_bind = true" in overview


def test_relative_links_resolve() -> None:
    pages = [REPO / "docs" / "deployment.md", *sorted((REPO / "docs" / "mail-clients").glob("*.md"))]
    broken = []
    for page in pages:
        for target, _anchor in LINK.findall(page.read_text()):
            if "://" not in target and not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    readme = (REPO / "README.md").read_text()
    for target in ("docs/deployment.md", "docs/mail-clients/README.md"):
        assert f"]({target})" in readme and (REPO / target).exists()
    assert broken == []
