"""What each counting call adds: the labels an operator sees for binds, untracked mail, sync actions and
conflicts, and the result code read back from an encoded LDAP answer."""

from __future__ import annotations

from ldaptor.protocols import pureldap

from abook.monitor import metrics
from abook.server import encode
from abook.server.dispatch import Response, result_code
from abook.sync.model import Conflict, Update


def _value(metric, *labels: str) -> float:  # type: ignore[no-untyped-def]
    return (metric.labels(*labels) if labels else metric)._value.get()


def test_binds_batches_and_sync_actions_by_label() -> None:
    m = metrics.Metrics()  # in-memory values (no multiprocess directory): this process only
    for code, anonymous in ((0, True), (0, False), (49, False), (51, False), (13, False), (80, False)):
        m.bind(code, anonymous)
    assert {o: _value(m.ldap_binds, o) for o in ("anonymous", "success", "invalid_credentials", "rate_limited",
                                                 "tls_required", "error")} == dict.fromkeys(
        ("anonymous", "success", "invalid_credentials", "rate_limited", "tls_required", "error"), 1.0)
    m.batch(5, 2, ["loop", "too_large", "loop"])
    assert (_value(m.mail_polled), _value(m.mail_tracked)) == (5.0, 2.0)
    assert (_value(m.mail_untracked, "loop"), _value(m.mail_untracked, "too_large")) == (2.0, 1.0)
    both = {"phone": {"crm": "1", "mailbox": "2"}}
    m.sync_applied("contact", [Update(None, conflict=both, winner="crm"), Update(None),
                               Conflict(None, None, None, both)])  # type: ignore[call-arg]
    assert _value(m.sync_actions, "contact", "update") == 2.0
    assert _value(m.sync_actions, "contact", "conflict") == 1.0
    assert (_value(m.sync_conflicts, "contact", "crm"), _value(m.sync_conflicts, "contact", "manual")) == (1.0, 1.0)


def test_backing_off_counts_mailboxes_not_failures() -> None:
    m = metrics.Metrics()
    m.back_off("jane", True)
    m.back_off("jane", True)
    m.back_off("support", True)
    assert _value(m.mailboxes_backing_off) == 2.0
    m.poll_ok("jane", 100.0)
    assert _value(m.mailboxes_backing_off) == 1.0


def test_result_code_of_an_encoded_answer() -> None:
    assert result_code(Response(encode.result(0x65, 0))) == 0
    assert result_code(Response(encode.result(0x65, 4, b"", b"x" * 300))) == 4  # long-form length
    assert result_code(Response(encode.result(0x6F, 6))) == 6
    assert result_code(pureldap.LDAPBindResponse(resultCode=49)) == 49
    assert result_code(None) == 0  # StartTLS answered itself
