"""Graph-only behaviour of the mailbox backend, replayed against the Graph responder over HTTPS: sign-in
(secret and certificate, token cached and renewed), throttling, access policy, errors, TLS."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from abook.mailbox import graph_client
from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxMissing, RateLimited, Unavailable
from abook.mailbox.graph import GraphSource
from tests.contract.harness import make_message
from tests.fixtures.graph import CLIENT_SECRET, GraphServer
from tests.graph.harness import GraphHarness


@pytest.fixture
def box(graph_server: GraphServer) -> GraphHarness:
    graph_client._auths.clear()  # each test signs in afresh (the process-wide token cache is the subject)
    return GraphHarness(graph_server)


def _token_requests(h: GraphHarness, mark: int) -> int:
    return sum(1 for r in h.responder.requests[mark:] if r.path.endswith("/oauth2/v2.0/token"))


def test_one_sign_in_serves_every_mailbox_of_the_app(box: GraphHarness, graph_server: GraphServer) -> None:
    other = GraphHarness(graph_server)
    mark = len(box.responder.requests)
    for h in (box, other, box):
        GraphSource(h.config()).changes_blocking(None, 10)
    assert _token_requests(box, mark) == 1
    # every Graph request asks for immutable ids
    graph = [r for r in box.responder.requests[mark:] if r.path.startswith("/v1.0/")]
    assert len(graph) == 6 and all(r.headers["Prefer"].startswith('IdType="ImmutableId"') for r in graph)


def test_a_token_about_to_expire_is_renewed(box: GraphHarness) -> None:
    box.responder.token_lifetime = 120  # MSAL renews tokens with less than five minutes left
    try:
        source = GraphSource(box.config())
        mark = len(box.responder.requests)
        source.changes_blocking(None, 10)
        source.changes_blocking(None, 10)
        assert _token_requests(box, mark) == 4  # one per Graph request (Inbox and Sent Items, twice)
    finally:
        box.responder.token_lifetime = 3599


def test_a_revoked_token_is_replaced_once(box: GraphHarness) -> None:
    source = GraphSource(box.config())
    source.changes_blocking(None, 10)
    box.responder.tokens.clear()  # Graph no longer accepts the cached token
    mark = len(box.responder.requests)
    source.changes_blocking(None, 10)
    calls = [r.split("/")[-1] for r in box.responder.since(mark)]
    assert calls == ["delta", "token", "delta", "delta"]  # refused, signed in again, retried; then Sent Items


def test_wrong_secret_is_auth_failed_without_the_secret(box: GraphHarness) -> None:
    source = GraphSource(box.wrong_password_config())
    with pytest.raises(AuthFailed, match="invalid_client AADSTS7000215") as e:
        source.changes_blocking(None, 10)
    assert "not-the-password" not in str(e.value) and CLIENT_SECRET not in str(e.value)
    assert "not-the-password" not in repr(box.wrong_password_config())


def test_unknown_tenant_is_auth_failed(box: GraphHarness) -> None:
    with pytest.raises(AuthFailed, match="tenant nosuch.example.com"):
        GraphSource(box.config(graph={"tenant": "nosuch.example.com"})).changes_blocking(None, 10)


def test_short_throttle_is_waited_out_and_retried(box: GraphHarness) -> None:
    sent = make_message("busy")
    box.deliver(sent)
    waits: list[float] = []
    source = GraphSource(box.config(), wait=waits.append)
    source.changes_blocking(None, 10)  # signed in
    box.responder.throttle("/messages/", status=503, retry_after=1.5)
    mark = len(box.responder.requests)
    (ref,) = source.changes_blocking(None, 10).messages
    assert source.fetch_blocking(ref) == sent
    assert waits == [1.5]
    assert [r.split("/")[-1] for r in box.responder.since(mark)] == ["delta", "delta", "delta", "$value"]


def test_long_throttle_is_rate_limited_for_the_router(box: GraphHarness) -> None:
    source = GraphSource(box.config())  # max_retry_wait = 2 s in the harness
    box.responder.throttle("/messages/delta", status=429, retry_after=120)
    mark = len(box.responder.requests)
    with pytest.raises(RateLimited) as e:
        source.changes_blocking(None, 10)
    assert e.value.retry_after == 120.0
    assert [r for r in box.responder.since(mark) if "delta" in r] == [box.responder.since(mark)[-1]]


def test_access_policy_and_unknown_mailbox(box: GraphHarness) -> None:
    with pytest.raises(MailboxMissing, match="ErrorInvalidUser"):
        GraphSource(box.config(graph={"mailbox": "nobody@example.com"})).changes_blocking(None, 10)
    box.responder.deny(box.address)
    with pytest.raises(AuthFailed, match="ErrorAccessDenied.*application access policy"):
        GraphSource(box.config()).changes_blocking(None, 10)


def test_a_cursor_that_is_no_delta_state_is_cursor_invalid(box: GraphHarness) -> None:
    source = GraphSource(box.config())
    with pytest.raises(CursorInvalid):
        source.changes_blocking("1:42", 10)
    with pytest.raises(CursorInvalid, match="outside"):  # a stored link never sends the token elsewhere
        source.changes_blocking('{"graph": 1, "links": {"inbox": "https://evil.example/v1.0/x"}}', 10)


def test_forward_mailbox_reads_only_its_inbox(box: GraphHarness) -> None:
    box.responder.deliver(box.address, make_message("sent"), "sentitems")
    assert GraphSource(box.config(role="forward")).changes_blocking(None, 10).messages == ()
    assert len(GraphSource(box.config(owner="jane.doe")).changes_blocking(None, 10).messages) == 1


def test_certificate_credential(box: GraphHarness, tmp_path: Path) -> None:
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=abook",
                    "-keyout", str(tmp_path / "key.pem"), "-out", str(tmp_path / "cert.pem")],
                   check=True, capture_output=True)
    pem = tmp_path / "app.pem"
    pem.write_bytes((tmp_path / "key.pem").read_bytes() + (tmp_path / "cert.pem").read_bytes())
    public = subprocess.run(["openssl", "x509", "-pubkey", "-noout", "-in", str(tmp_path / "cert.pem")],
                            check=True, capture_output=True).stdout
    client = "0c0c0c0c-0000-4000-8000-00000000ce47"
    box.responder.certificates[client] = public
    box.deliver(make_message("by certificate"))
    config = box.config(graph={"client_id": client, "client_secret": None, "certificate_file": str(pem)})
    assert len(GraphSource(config).changes_blocking(None, 10).messages) == 1
    other = tmp_path / "other"
    other.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=x",
                    "-keyout", str(other / "key.pem"), "-out", str(other / "cert.pem")], check=True, capture_output=True)
    (other / "app.pem").write_bytes((other / "key.pem").read_bytes() + (other / "cert.pem").read_bytes())
    wrong = box.config(graph={"client_id": client, "client_secret": None, "certificate_file": str(other / "app.pem")})
    with pytest.raises(AuthFailed, match="invalid_client"):
        GraphSource(wrong).changes_blocking(None, 10)


def test_untrusted_certificate_is_refused(box: GraphHarness) -> None:
    with pytest.raises(Unavailable, match="CERTIFICATE_VERIFY_FAILED"):
        GraphSource(box.config(ca_file=None)).changes_blocking(None, 10)


def test_abort_cuts_a_trickling_download(box: GraphHarness) -> None:
    """The router's command deadline calls abort() from the reactor: a server sending a byte at a time
    (which never trips the per-read timeout) is cut at once, and the operation fails as Unavailable."""
    import threading

    box.deliver(make_message("slow"))
    source = GraphSource(box.config())
    (ref,) = source.changes_blocking(None, 10).messages
    box.responder.trickle("/$value", delay=0.5)  # the whole message would take half an hour
    outcome: list[BaseException] = []

    def fetch() -> None:
        try:
            source.fetch_blocking(ref)
        except BaseException as e:  # noqa: BLE001 - handed to the test thread
            outcome.append(e)

    worker = threading.Thread(target=fetch)
    worker.start()
    try:
        assert box.responder.trickle_started.wait(10)
        source.abort()
        worker.join(10)
        assert not worker.is_alive()
        assert len(outcome) == 1 and isinstance(outcome[0], Unavailable) and "cut short" in str(outcome[0])
    finally:
        box.responder.trickle_stop.set()
    # the next operation connects again, on this source or a new one
    assert source.fetch_blocking(ref) == box.responder.store.messages[ref.external_id].mime
