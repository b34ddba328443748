"""How a record is keyed and stamped: a new GUID id in its 36-character text form, and the UTC time now.

Apart from the mappings, so the layers above can make ids and timestamps without importing them.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone


def new_id() -> str:
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
