"""Strict input the BER framer cannot judge, and failures that cost a client one log line at most.

``framing.check_message`` refuses what is wrongly *encoded* (lengths, nesting, a BOOLEAN of more than one
octet, a message id outside 1..maxInt) with a Notice of Disconnection (RFC 4511 4.1.1). A SearchRequest
that is well encoded but carries a value outside its type's range is answered protocolError (2) in its
SearchResultDone and the connection goes on, as slapd's ``do_search`` does: a scope other than
baseObject, singleLevel or wholeSubtree (RFC 4511 4.5.1; subordinateSubtree is an extension abook does
not offer), derefAliases outside 0..3, a sizeLimit or timeLimit outside 0..maxInt.

``log_failure``: a request that fails in a way abook did not foresee is logged with its traceback the
first time per request type and exception type, and in one line after that, so a client repeating it
cannot make the log many times larger than what it sends.
"""

from __future__ import annotations

from typing import Any

from ldaptor.protocols.ldap import ldaperrors
from twisted.python.failure import Failure

MAX_INT = 2**31 - 1  # RFC 4511 4.1.1
SCOPES = frozenset((0, 1, 2))
DEREF_ALIASES = frozenset((0, 1, 2, 3))
_TRACED_MAX = 256
#: (request, exception type) pairs whose traceback this process has logged
_traced: set[tuple[str, str]] = set()


def check_search(request: Any) -> None:
    """Raise protocolError for a SearchRequest value outside its range."""
    if request.scope not in SCOPES:
        raise ldaperrors.LDAPProtocolError("unknown search scope")
    if request.derefAliases not in DEREF_ALIASES:
        raise ldaperrors.LDAPProtocolError("unknown derefAliases value")
    if not 0 <= request.sizeLimit <= MAX_INT:
        raise ldaperrors.LDAPProtocolError("sizeLimit out of range")
    if not 0 <= request.timeLimit <= MAX_INT:
        raise ldaperrors.LDAPProtocolError("timeLimit out of range")


def log_failure(log: Any, failure: Failure, request: str, address: str) -> None:
    """Log an unforeseen failure of a request: with its traceback once per kind, in one line after that."""
    key = (request, failure.type.__name__ if failure.type is not None else "?")
    if key in _traced or len(_traced) >= _TRACED_MAX:
        log.error("{request} from {address} failed: {error} (traceback logged before)", request=request,
                  address=address, error=key[1])
        return
    _traced.add(key)
    log.failure("{request} from {address} failed", failure, request=request, address=address)
