"""What a fresh Python process imports: the daemon leaves Alembic (and Mako, Pygments) out, the mail
backends leave exchangelib out unless a mailbox uses EWS. Each runs a child interpreter, so they live
here rather than in tests/unit (issue 15, item 5); moved from tests/unit/store/test_schema.py and
tests/unit/mailbox/test_registry.py."""

from __future__ import annotations

import subprocess
import sys


def test_serving_imports_no_alembic(tmp_path) -> None:
    """The daemon's modules and its schema check leave Alembic (and Mako, Pygments) unimported."""
    db = tmp_path / "s.sqlite3"
    code = (
        "import sys\n"
        "from abook.store import make_engine, schema\n"
        f"engine = make_engine('sqlite:///{db}')\n"
        "schema.upgrade(engine)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
    code = (
        "import sys\n"
        "import abook.tap, abook.server.service, abook.server.workers.pool\n"
        "from abook.store import make_engine, schema\n"
        f"schema.check(make_engine('sqlite:///{db}'))\n"
        "print(sorted(m for m in ('alembic', 'mako', 'pygments') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_exchangelib_loads_only_for_ews() -> None:
    code = (
        "import sys; from abook.mailbox.registry import backend_class; backend_class('imap'); "
        "backend_class('pop3'); import abook.mailbox.registry as r; print('exchangelib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
