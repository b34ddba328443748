"""`abook track` reading a message on a real standard input, then `abook email show`, each a separate
process. Child processes, so it lives here rather than in tests/unit/tracking/test_cli.py (issue 15,
item 5)."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import REPO
from tests.unit.tracking.conftest import Crm, message
from tests.unit.tracking.test_cli import cli_crm  # noqa: F401  (a fixture, found by name)


def test_track_reads_standard_input_and_outgoing_direction(cli_crm: tuple[str, Crm]) -> None:
    cfg, _ = cli_crm
    raw = message("From: jane@corp.example", "To: bob@example.net", "Subject: sent", "Message-ID: <sent@x>")
    proc = subprocess.run(
        [sys.executable, "-c", "import sys; from abook.cli import main; sys.exit(main())",
         "track", "--user", "jane", "--direction", "out", "-c", cfg],
        input=raw, capture_output=True, cwd=REPO, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    activity_id = proc.stdout.decode().split()[-1]
    shown = subprocess.run(
        [sys.executable, "-c", "import sys; from abook.cli import main; sys.exit(main())",
         "email", "show", activity_id, "-c", cfg], capture_output=True, cwd=REPO, timeout=60, text=True)
    assert "direction:    outgoing (status 3)" in shown.stdout
