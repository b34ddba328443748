"""Replay tests of the Graph responder itself, spoken to with plain requests as the documentation shows:
if these shapes were wrong, every backend test on top of it would prove nothing."""

from __future__ import annotations

import base64
import uuid

import requests

from tests.contract.harness import make_message
from tests.fixtures.graph import CLIENT_ID, CLIENT_SECRET, TENANT, GraphServer


def _session(graph_server: GraphServer) -> tuple[requests.Session, str]:
    r = graph_server.responder
    s = requests.Session()
    s.verify, s.trust_env = graph_server.ca_file, False  # REQUESTS_CA_BUNDLE would win over s.verify
    meta = s.get(f"{r.base}/{TENANT}/v2.0/.well-known/openid-configuration").json()
    token = s.post(meta["token_endpoint"], data={
        "client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "grant_type": "client_credentials",
        "scope": "https://graph.microsoft.com/.default"}).json()
    assert token["token_type"] == "Bearer" and token["expires_in"] > 0
    s.headers["Authorization"] = "Bearer " + token["access_token"]
    return s, r.graph_url


def test_client_credentials_refuse_a_wrong_secret(graph_server: GraphServer) -> None:
    r = graph_server.responder
    reply = requests.post(f"{r.base}/{TENANT}/oauth2/v2.0/token", verify=graph_server.ca_file, data={
        "client_id": CLIENT_ID, "client_secret": "wrong", "grant_type": "client_credentials",
        "scope": "https://graph.microsoft.com/.default"})
    assert reply.status_code == 401 and reply.json()["error"] == "invalid_client"
    unauthenticated = requests.get(f"{r.graph_url}/users/x@example.com/messages/1", verify=graph_server.ca_file)
    assert unauthenticated.status_code == 401
    assert unauthenticated.json()["error"]["code"] == "InvalidAuthenticationToken"


def test_delta_pages_then_delta_link_then_changes_and_removals(graph_server: GraphServer) -> None:
    r = graph_server.responder
    s, base = _session(graph_server)
    box = f"u-{uuid.uuid4().hex[:6]}@example.com"
    r.add_mailbox(box)
    mimes = [make_message(f"m{n}") for n in range(3)]
    ids = [r.deliver(box, m) for m in mimes]
    url = f"{base}/users/{box}/mailFolders/inbox/messages/delta?$select=categories"
    seen, pages = [], 0
    while True:
        page = s.get(url, headers={"Prefer": "odata.maxpagesize=2"}).json()
        pages += 1
        seen += [e["id"] for e in page["value"]]
        if "@odata.deltaLink" in page:
            delta = page["@odata.deltaLink"]
            break
        url = page["@odata.nextLink"]
    assert (seen, pages) == (ids, 2)
    assert s.get(delta).json()["value"] == []
    raw = s.get(f"{base}/users/{box}/messages/{ids[0]}/$value").content
    assert raw == mimes[0]
    s.delete(f"{base}/users/{box}/messages/{ids[1]}")
    s.patch(f"{base}/users/{box}/messages/{ids[2]}", json={"categories": ["Tracked to CRM"]})
    changes = s.get(delta).json()["value"]
    assert {"id": ids[1], "@removed": {"reason": "deleted"}} in changes
    assert {"@odata.type": "#microsoft.graph.message", "id": ids[2], "categories": ["Tracked to CRM"]} in changes
    r.expire_delta(box)
    gone = s.get(delta)
    assert gone.status_code == 410 and gone.json()["error"]["code"] == "SyncStateNotFound"


def test_throttling_batch_and_send_mail(graph_server: GraphServer) -> None:
    r = graph_server.responder
    s, base = _session(graph_server)
    box = f"u-{uuid.uuid4().hex[:6]}@example.com"
    r.add_mailbox(box)
    r.throttle("/sendMail", retry_after=7)
    mime = make_message("out")
    throttled = s.post(f"{base}/users/{box}/sendMail", data=base64.b64encode(mime),
                       headers={"Content-Type": "text/plain"})
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "7"
    sent = s.post(f"{base}/users/{box}/sendMail", data=base64.b64encode(mime), headers={"Content-Type": "text/plain"})
    assert sent.status_code == 202 and r.store.mailboxes[box].sent == [mime]
    batch = s.post(f"{base}/$batch", json={"requests": [
        {"id": "1", "method": "GET", "url": f"/users/{box}/mailFolders/inbox/messageRules"},
        {"id": "2", "method": "GET", "url": "/users/nobody@example.com/mailFolders/inbox/messageRules"}]}).json()
    assert [(x["id"], x["status"]) for x in batch["responses"]] == [("1", 200), ("2", 404)]
