"""``python -m abook``: the ``abook`` command (the daemon starts its LDAP workers this way)."""

import sys

from abook.cli import main

sys.exit(main())
