"""What the Graph contact, event and To Do parts share: walking a delta round, writing with ``If-Match``."""

from __future__ import annotations

from typing import Any, Optional

from abook.mailbox.errors import MailboxError, MessageGone
from abook.mailbox.graph_client import GraphClient
from abook.mailbox.pim.interfaces import ItemGone, StaleItem

#: abook's extended property set (pim/ews_common.py PROPERTY_SET; not imported: that loads exchangelib)
PROPERTY_SET = "{9d1e8f4a-6b2c-4e3d-9a51-0c7b2f8e6d14}"
#: the EWS backend's CRM-id property, as Graph names it
CRM_ID = f"String {PROPERTY_SET} Name abookCrmId"


class DeltaRound:
    """Every page of one delta round, followed from ``link`` to its ``@odata.deltaLink``. Graph promises no
    order and may hand out an entry twice: a repeated change keeps its last form; ``removed`` holds the ids
    of ``@removed`` entries (an id may be in both: the caller looks it up to decide)."""

    def __init__(self, client: GraphClient, link: str, what: str, prefer: str = "") -> None:
        self.changed: dict[str, dict[str, Any]] = {}
        self.removed: dict[str, None] = {}
        next_link: Optional[str] = link
        while next_link:
            page = client.json("GET", next_link, prefer=prefer)
            for entry in page.get("value", []):
                if "@removed" in entry:
                    self.removed[entry["id"]] = None
                else:
                    self.changed[entry["id"]] = entry
            if "@odata.deltaLink" in page:
                self.delta_link: str = page["@odata.deltaLink"]
                return
            next_link = page.get("@odata.nextLink")
        raise MailboxError(f"{client.name}: a {what} delta page with neither nextLink nor deltaLink")


def write(client: GraphClient, method: str, path: str, etag: Optional[str], what: str, **kwargs: Any) -> Any:
    """A PATCH or DELETE of one item: 412 (the etag no longer matches) -> StaleItem, 404 -> ItemGone."""
    headers = {"If-Match": etag} if etag else {}
    try:
        return client.json(method, path, headers=headers, **kwargs)
    except MessageGone:
        raise ItemGone(f"{client.name}: {what} is gone") from None
    except MailboxError as e:
        if " 412 " in str(e):
            raise StaleItem(str(e)) from None
        raise


def fetch(client: GraphClient, paths: dict[str, str], prefer: str = "") -> dict[str, dict[str, Any]]:
    """``GET`` each path (key -> path) in ``$batch`` rounds: key -> resource, for those that still exist. Each
    inner request carries its own ``Prefer`` (ImmutableId and ``prefer``): a batch's headers are not its
    requests'."""
    keys = list(paths)
    headers = {"Prefer": ", ".join(p for p in ('IdType="ImmutableId"', prefer) if p)}
    requests_ = [{"id": str(n), "method": "GET", "url": paths[k], "headers": headers} for n, k in enumerate(keys)]
    out: dict[str, dict[str, Any]] = {}
    for n, reply in client.batch(requests_, check=False).items():
        if reply["status"] == 404:
            continue  # deleted since it was listed
        if reply["status"] >= 400:
            raise client.error_of_reply(reply)
        out[keys[int(n)]] = reply["body"]
    return out
