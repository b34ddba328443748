"""Exchange Online backend through Microsoft Graph (blocking, on the ``mail`` pool; HTTP in graph_client.py).

- Changes: delta queries, ``/users/{mailbox}/mailFolders/{folder}/messages/delta``, on the Inbox (or the
  configured folder) and, for a router mailbox, on Sent Items. One page per folder per call, at most
  ``limit`` messages (``Prefer: odata.maxpagesize``). The cursor is a small JSON object holding, per folder,
  the whole link to read next: an ``@odata.nextLink`` while a round is in progress, its
  ``@odata.deltaLink`` once it is over. It goes back to the router inside the Batch and is stored in the
  same transaction as the messages it covers, so a link is saved only once its batch is committed; a
  crash before that reads the same page again.
- What counts as new: every entry that is not ``@removed``, not a draft, and does not already carry the
  tracked category; Graph reports our own marking as an update, and may repeat an entry or reorder a
  round, so entries are also de-duplicated within the batch (the tracking engine, keyed by Message-ID,
  takes care of a message seen again in a later batch).
- ``410 Gone`` / ``SyncStateNotFound`` on a stored link: that folder is read again from its initial delta
  URL (a full resync, logged). Messages already tracked carry the category and are skipped; the others
  are known to the tracking engine by Message-ID, so nothing is tracked twice and nothing is deleted.
- Fetch: ``/messages/{id}/$value`` (Exchange's MIME rendering), streamed and cut off at ``limit``. Graph
  announces no size, so ``MessageRef.size`` is None.
- Mark: ``PATCH`` adding ``tracked_category`` to the categories (read first, so other categories stay)
  and setting the PublicStrings single-value extended property ``tracked_property`` (Integer 1), the one the
  EWS backend sets.
- Remove: ``DELETE`` (Exchange moves the message to Deleted Items: recoverable).
"""

from __future__ import annotations

import json
import threading
from typing import Any, Callable, Optional
from urllib.parse import quote

import requests
from twisted.logger import Logger
from zope.interface import implementer

from abook.config.mail import GraphOptions, MailboxConfig
from abook.mailbox.errors import CursorInvalid, MailboxError, MessageGone, TooLarge, Unavailable
from abook.mailbox.graph_client import GraphClient, auth_for
from abook.mailbox.interfaces import DEFAULT_LIMIT, HEAD_BYTES, Batch, IMailSource, MessageRef

#: PS_PUBLIC_STRINGS, the property set EWS calls "PublicStrings"
PUBLIC_STRINGS = "{00020329-0000-0000-C000-000000000046}"
#: the well-known folder names Graph accepts in place of an id
WELL_KNOWN = {"inbox": "inbox", "sentitems": "sentitems", "sent items": "sentitems", "archive": "archive"}
_SELECT = "categories,isDraft,internetMessageId"


def tracked_property_id(name: str) -> str:
    return f"Integer {PUBLIC_STRINGS} Name {name}"


@implementer(IMailSource)
class GraphSource:
    log = Logger()

    def __init__(self, config: MailboxConfig, wait: Callable[[float], Any] = threading.Event().wait) -> None:
        if config.graph is None:
            raise MailboxError(f"{config.name}: a Graph mailbox needs [mailboxes.graph]")
        self._config = config
        self._graph: GraphOptions = config.graph
        self.client = GraphClient(auth_for(config.graph, config.ca_file, config.timeout), config.name, wait)
        self._user = "/users/" + quote(config.graph.mailbox, safe="@")
        folder = config.folder.strip()
        self.folders = [WELL_KNOWN.get(folder.lower(), folder)]
        if config.role == "router" and config.graph.sent_items and "sentitems" not in self.folders:
            self.folders.append("sentitems")

    def __repr__(self) -> str:
        return f"<GraphSource {self._config.name} {self._graph.mailbox} via {self._graph.graph_url}>"

    # -- IMailSource

    def changes_blocking(self, cursor: Optional[str], limit: int) -> Batch:
        links = self._links(cursor)
        refs: list[MessageRef] = []
        seen: set[str] = set()
        more = False
        for folder in self.folders:
            room = limit - len(refs)
            if room <= 0:
                more = True
                break
            page = self._page(folder, links.get(folder), room)
            for entry in page.get("value", []):
                if "@removed" in entry or entry.get("isDraft") or entry["id"] in seen:
                    continue
                seen.add(entry["id"])
                if self._graph.tracked_category in (entry.get("categories") or []):
                    continue  # tracked already: our own mark comes back as an update
                refs.append(MessageRef(entry["id"], direction="out" if folder == "sentitems" else "in"))
            if "@odata.nextLink" in page:
                links[folder], more = page["@odata.nextLink"], True
            elif "@odata.deltaLink" in page:
                links[folder] = page["@odata.deltaLink"]
            else:
                raise MailboxError(f"{self._config.name}: a delta page with neither nextLink nor deltaLink")
        self.log.debug("{mailbox}: {count} new", mailbox=self._config.name, count=len(refs))
        return Batch(tuple(refs), json.dumps({"graph": 1, "links": links}, sort_keys=True), more=more)

    def fetch_blocking(self, ref: MessageRef, limit: int = DEFAULT_LIMIT) -> bytes:
        response = self.client.request("GET", f"{self._user}/messages/{quote(ref.external_id)}/$value", stream=True)
        try:
            chunks, size = [], 0
            for chunk in response.iter_content(64 * 1024):
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    raw = b"".join(chunks)
                    raise TooLarge(f"{self._config.name}: Exchange sent more than {limit} bytes", size,
                                   raw[:HEAD_BYTES], announced=False)
            return b"".join(chunks)
        except (requests.RequestException, OSError) as e:
            raise Unavailable(f"{self._config.name}: downloading a message: {self.client.failed_read(e)}") from None
        finally:
            response.close()
            self.client.cutter.detach()

    def mark_tracked_blocking(self, ref: MessageRef) -> None:
        category, prop = self._graph.tracked_category, tracked_property_id(self._graph.tracked_property)
        path = f"{self._user}/messages/{quote(ref.external_id)}"
        expand = f"singleValueExtendedProperties($filter=id eq '{prop}')"
        item = self.client.json("GET", f"{path}?$select=categories&$expand={quote(expand)}")
        categories = list(item.get("categories") or [])
        marked = any(p.get("id", "").lower() == prop.lower() and p.get("value") == "1"
                     for p in item.get("singleValueExtendedProperties") or [])
        if marked and category in categories:
            return  # already marked: write nothing
        if category not in categories:
            categories.append(category)
        self.client.request("PATCH", path, json={
            "categories": categories, "singleValueExtendedProperties": [{"id": prop, "value": "1"}]})

    def remove_blocking(self, ref: MessageRef) -> None:
        try:
            self.client.request("DELETE", f"{self._user}/messages/{quote(ref.external_id)}")
        except MessageGone:
            return  # already gone

    def close_blocking(self) -> None:
        """Nothing to log out of: the app's token and HTTP session are shared and kept for the next poll."""

    def abort(self) -> None:
        """Shut down the socket of the answer being read (graph_client.py); the operation fails as Unavailable.
        A server that has not begun to answer is bounded by ``timeout`` instead."""
        self.client.cutter.cut()

    # -- delta

    def _links(self, cursor: Optional[str]) -> dict[str, str]:
        if not cursor:
            return {}
        try:
            state = json.loads(cursor)
            links = state["links"]
            assert state.get("graph") == 1 and isinstance(links, dict)
        except (ValueError, KeyError, TypeError, AssertionError):
            raise CursorInvalid(f"{self._config.name}: the stored cursor is not a Graph delta state") from None
        links = {k: v for k, v in links.items() if k in self.folders and isinstance(v, str)}
        for link in links.values():
            self.client.url(link)  # a link elsewhere than Graph: CursorInvalid (the token never goes there)
        return links

    def _initial(self, folder: str) -> str:
        return f"{self._user}/mailFolders/{quote(folder)}/messages/delta?$select={_SELECT}"

    def _page(self, folder: str, link: Optional[str], room: int) -> dict[str, Any]:
        prefer = f"odata.maxpagesize={room}"
        try:
            return self.client.json("GET", link or self._initial(folder), prefer=prefer)  # type: ignore[no-any-return]
        except CursorInvalid as e:
            if link is None:
                raise
            self.log.warn("{mailbox}: Graph no longer knows the delta state of {folder} ({error}); reading the "
                          "folder again from the start (messages already tracked are not tracked twice)",
                          mailbox=self._config.name, folder=folder, error=str(e))
            return self.client.json("GET", self._initial(folder), prefer=prefer)  # type: ignore[no-any-return]
