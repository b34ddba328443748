"""Search values out of range are protocolError; an unforeseen failure logs its traceback once per kind."""

from __future__ import annotations

import pytest
from ldaptor.protocols import pureldap
from ldaptor.protocols.ldap import ldaperrors
from twisted.logger import Logger, formatEvent
from twisted.python.failure import Failure

from abook.server import strict


def _search(**kw: object) -> pureldap.LDAPSearchRequest:
    return pureldap.LDAPSearchRequest(baseObject="o=crm", filter=pureldap.LDAPFilter_present("cn"), **kw)


@pytest.mark.parametrize("kw, message", [
    ({"scope": 3}, "unknown search scope"),  # subordinateSubtree: an extension abook does not offer
    ({"scope": 99}, "unknown search scope"),
    ({"derefAliases": 4}, "unknown derefAliases value"),
    ({"sizeLimit": -1}, "sizeLimit out of range"),
    ({"sizeLimit": 2**31}, "sizeLimit out of range"),
    ({"timeLimit": -127}, "timeLimit out of range"),
    ({"timeLimit": 2**31}, "timeLimit out of range"),
])
def test_values_out_of_range_are_protocol_errors(kw: dict, message: str) -> None:
    with pytest.raises(ldaperrors.LDAPProtocolError, match=message):
        strict.check_search(_search(**kw))
    for scope in (0, 1, 2):  # the values at the ends of each range pass
        strict.check_search(_search(scope=scope, derefAliases=3, sizeLimit=2**31 - 1, timeLimit=2**31 - 1))


def test_a_failure_logs_its_traceback_once_per_kind() -> None:
    events: list[dict] = []
    log = Logger(observer=events.append)

    def fail(exc: Exception) -> Failure:
        try:
            raise exc
        except Exception:
            return Failure()

    for _ in range(3):
        strict.log_failure(log, fail(KeyError("x")), "TestRequest", "192.0.2.1")
    strict.log_failure(log, fail(IndexError("y")), "TestRequest", "192.0.2.1")
    with_traceback = [e for e in events if "log_failure" in e]
    assert [e["log_failure"].type for e in with_traceback] == [KeyError, IndexError]
    one_line = [formatEvent(e) for e in events if "log_failure" not in e]
    assert one_line == ["TestRequest from 192.0.2.1 failed: KeyError (traceback logged before)"] * 2
