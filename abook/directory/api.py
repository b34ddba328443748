"""The seam between the LDAP protocol server and the directory: ``IDirectory``, ``IAuthenticator`` and
their values. ``tap.py`` builds the providers and hands them to ``server/``, which imports none of them.

The server (``abook/server``) parses requests, enforces limits and controls, and encodes responses; the
directory turns a ``SearchSpec`` into one SQL query per batch (visibility applied in SQL, LIMIT in the
database) and hands entries back, as values or (``Entry.ber``) already encoded on its worker thread.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet import defer
from zope.interface import Interface

# what a search or a bind fails with when the store cannot answer (the server: busy 51, else unavailable 52)
from abook.store.outage import StoreOutage as StoreOutage
from abook.store.records import Principal

# Search scopes, as RFC 4511 numbers them.
BASE, ONE_LEVEL, SUBTREE = 0, 1, 2


@dataclass(frozen=True)
class SortKey:
    attribute: str
    reverse: bool = False
    ordering_rule: str | None = None


@dataclass(frozen=True)
class VlvRequest:
    """A Virtual List View request (draft-ietf-ldapext-ldapv3-vlv-09): a window of ``before`` entries,
    the target and ``after`` entries of the sorted result. The target is either ``offset`` (1-based) with
    the client's estimate ``content_count`` (0: none), or the first entry whose first sort key is at or
    after ``assertion`` in the sort order."""

    before: int
    after: int
    offset: int = 0
    content_count: int = 0
    assertion: str | None = None
    context: bytes = b""


@dataclass(frozen=True)
class VlvResult:
    """What the VLV response control reports: the target's position and the list's size."""

    target: int
    content_count: int
    result: int = 0
    context: bytes = b""


@dataclass(frozen=True)
class SearchSpec:
    base: str
    scope: int
    #: an ldaptor ``pureldap.LDAPFilter*`` object, as decoded from the request
    filter: Any
    #: requested attribute descriptions as sent ("*", "+", "1.1", names, in any case); empty = all user attrs
    attributes: tuple[str, ...] = ()
    types_only: bool = False
    #: effective size limit (the smaller of the client's and the server's); 0 = none
    size_limit: int = 0
    #: effective time limit in seconds; 0 = none
    time_limit: float = 0.0
    #: the bound user, or None for an anonymous connection
    principal: Principal | None = None
    #: address books open to anonymous connections (config ldap.anonymous_books)
    anonymous_books: frozenset[str] = frozenset()
    #: simple paged results (RFC 2696): page size and the cookie the client sent back (b"" on the first)
    page_size: int | None = None
    cookie: bytes = b""
    #: server-side sort (RFC 2891), None when not asked for
    sort: tuple[SortKey, ...] | None = None
    #: the sort control was critical: a search that cannot be sorted sends no entries (RFC 2891 1.2)
    sort_critical: bool = False
    #: the filter's BER encoding as the client sent it (a cache key; None: derived from ``filter``)
    filter_wire: bytes | None = None
    #: on whose behalf the search runs, outermost first: (user id or client address, connection); the
    #: directory shares its database threads fairly between them (``abook/scheduling.py``); None: not shared
    requester: tuple | None = None
    #: Virtual List View (needs ``sort``): only a window of the sorted result is sent
    vlv: VlvRequest | None = None


@dataclass(frozen=True)
class Entry:
    dn: str
    #: (attribute name as served, values) in output order; values empty when types_only
    attributes: tuple[tuple[str, tuple[bytes, ...]], ...]
    #: the entry already encoded as a SearchResultEntry op (BER), by a directory asked to encode on its
    #: worker thread (``StoreDirectory(encode=True)``, as the daemon runs it); ``attributes`` is then empty
    ber: bytes | None = None


@dataclass(frozen=True)
class SearchDone:
    result_code: int = 0
    message: str = ""
    matched_dn: str = ""
    #: paged results: the cookie to return (b"" after the last page); None when paging was not asked for
    cookie: bytes | None = None
    #: server-side sort: the sortResult code to return, None when sorting was not asked for
    sort_result: int | None = None
    #: Virtual List View: what the response control reports, None when VLV was not asked for
    vlv: VlvResult | None = None


class IDirectory(Interface):
    def search(spec: SearchSpec, send_entry: Callable[[Entry], Any]) -> defer.Deferred:
        """Find the entries ``spec`` selects and call ``send_entry`` for each, on the reactor thread.

        ``send_entry`` may return a Deferred (the client reads slowly): no entry is sent before it fires.
        Fires with a ``SearchDone``. Cancelling the Deferred (Abandon, time limit, closed connection)
        stops the search: no ``send_entry`` call follows, and the database work is abandoned.
        Raises/fails with ldaptor ``ldaperrors`` classes for LDAP result codes (noSuchObject, ...).
        """


@dataclass(frozen=True)
class BoundIdentity:
    """Who a successful bind made the connection: the user's entry DN and what they may read."""

    dn: str
    user_id: str
    principal: Principal


class IAuthenticator(Interface):
    def authenticate(name: str, password: str, source: str) -> defer.Deferred:
        """Check a simple bind of ``name`` (a DN, user name or email address) from client address
        ``source``. Fires with a ``BoundIdentity``; fails with ldaptor ``ldaperrors`` classes
        (invalidCredentials, busy, unavailable, ...). Never logs or raises the password."""
