"""A Microsoft Graph and Entra ID responder on 127.0.0.1 (HTTPS) for the "replay" tests: abook's Graph code
(MSAL and requests) talks to it over real sockets, in the request and response shapes Microsoft documents
on learn.microsoft.com:

- identity platform: ``GET /{tenant}/v2.0/.well-known/openid-configuration`` and the client credentials
  grant ``POST /{tenant}/oauth2/v2.0/token`` (``client_secret``, or a ``client_assertion`` JWT signed with a
  registered certificate; errors ``invalid_client`` / ``invalid_request`` with AADSTS codes);
- ``GET /v1.0/users/{id}/mailFolders/{folder}/messages/delta`` (see store.py), ``Prefer: odata.maxpagesize``;
- ``GET /v1.0/users/{id}/messages/{id}/$value`` (the MIME), ``GET``/``PATCH``/``DELETE`` of a message
  (``categories``, ``singleValueExtendedProperties``), ``GET .../mailFolders/{folder}/messages?$filter=
  internetMessageId eq '...'``;
- contacts (pim_routes.py), events and ``calendarView/delta`` (event_routes.py), To Do lists, tasks and
  their delta (todo_routes.py), delta rounds of the last two in pim_delta.py;
- ``POST /v1.0/users/{id}/sendMail`` with ``Content-Type: text/plain`` and a base64 MIME body (202);
- ``/v1.0/users/{id}/mailFolders/inbox/messageRules`` (GET, POST, PATCH, DELETE);
- ``POST /v1.0/$batch`` (JSON batching: up to 20 requests, each answered in ``responses``);
- errors as ``{"error": {"code", "message"}}``: 401 InvalidAuthenticationToken, 403 ErrorAccessDenied (an
  application access policy), 404 ErrorItemNotFound / ResourceNotFound, 410 SyncStateNotFound, 429
  TooManyRequests and 503 with ``Retry-After``.

Test controls: ``throttle()``, ``expire_delta()``, ``deny()``, ``lose_reply()``, ``repeat_next_entry()``,
and the request log (method, path, query, headers, time).
"""

from __future__ import annotations

import base64
import json
import ssl
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional
from urllib.parse import parse_qs, quote, unquote, urlsplit

import jwt

from tests.graph.store import MailStore, Rule, new_id

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
Reply = tuple[int, dict[str, str], bytes]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    at: float
    body: bytes


def _json(status: int, body: Any, headers: Optional[dict[str, str]] = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(body).encode()


def _error(status: int, code: str, message: str, headers: Optional[dict[str, str]] = None) -> Reply:
    return _json(status, {"error": {"code": code, "message": message,
                                    "innerError": {"request-id": str(uuid.uuid4())}}}, headers)


class GraphResponder:
    def __init__(self, tls: ssl.SSLContext, tenant: str, clients: dict[str, str]) -> None:
        self.tenant = tenant
        #: client id -> secret; certificates: client id -> PEM public key
        self.secrets = dict(clients)
        self.certificates: dict[str, bytes] = {}
        self.store = MailStore()
        self.requests: list[Request] = []
        self.tokens: dict[str, tuple[str, float]] = {}  # access token -> (client id, expiry)
        self.token_lifetime = 3599
        self.denied: set[str] = set()
        self._throttles: list[tuple[str, int, float]] = []  # (path part, status, retry after)
        self._lose: set[str] = set()
        self._trickle: dict[str, float] = {}
        self.trickle_started = threading.Event()
        self.trickle_stop = threading.Event()
        self.lock = threading.RLock()
        responder = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def _serve(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                status, headers, body = responder.handle(self.command, self.path, dict(self.headers.items()), data)
                if status == 0:  # lose_reply: the request was carried out, the connection dies unanswered
                    self.close_connection = True
                    return
                self.send_response(status)
                for k, v in {**headers, "Content-Length": str(len(body))}.items():
                    self.send_header(k, v)
                self.end_headers()
                delay = responder.trickling(self.path)
                if delay is None:
                    self.wfile.write(body)
                    return
                for n in range(len(body)):  # a server sending its answer a byte at a time
                    self.wfile.write(body[n:n + 1])
                    self.wfile.flush()
                    responder.trickle_started.set()
                    if responder.trickle_stop.wait(delay):
                        return

            do_GET = do_POST = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.port = self.server.server_address[1]
        self.base = f"https://127.0.0.1:{self.port}"
        self.graph_url = self.base + "/v1.0"
        self._thread = threading.Thread(target=self.server.serve_forever, name="graph-responder", daemon=True)

    def start(self) -> "GraphResponder":
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)

    # -- test controls

    def add_mailbox(self, address: str) -> None:
        with self.lock:
            self.store.add_mailbox(address)

    def deliver(self, address: str, mime: bytes, folder: str = "inbox") -> str:
        with self.lock:
            return self.store.deliver(address, mime, folder).id

    def throttle(self, path_part: str = "", status: int = 429, retry_after: float = 1, times: int = 1) -> None:
        """The next ``times`` Graph requests whose path contains ``path_part`` answer ``status`` with Retry-After."""
        with self.lock:
            self._throttles += [(path_part, status, retry_after)] * times

    def expire_delta(self, address: str) -> None:
        from tests.graph import pim_delta

        with self.lock:
            self.store.expire_all(address.lower())
            pim_delta.expire(self, address.lower())

    def deny(self, address: str) -> None:
        """An application access policy that leaves this mailbox out of the app's reach."""
        with self.lock:
            self.denied.add(address.lower())

    def lose_reply(self, path_part: str) -> None:
        """The next request whose path contains ``path_part`` is carried out, but its reply never comes."""
        with self.lock:
            self._lose.add(path_part)

    def trickle(self, path_part: str, delay: float) -> None:
        """The next answer to a path containing ``path_part`` comes a byte every ``delay`` seconds."""
        with self.lock:
            self._trickle[path_part] = delay
            self.trickle_started.clear()
            self.trickle_stop.clear()

    def trickling(self, path: str) -> Optional[float]:
        with self.lock:
            part = next((p for p in self._trickle if p in path), None)
            return self._trickle.pop(part) if part is not None else None

    def repeat_next_entry(self) -> None:
        with self.lock:
            self.store.repeat_next = True

    def since(self, mark: int) -> list[str]:
        """"METHOD path" of the requests after ``mark`` (the Graph ones relative to /v1.0)."""
        return [f"{r.method} {r.path.removeprefix('/v1.0')}" for r in self.requests[mark:]]

    # -- dispatch

    def handle(self, method: str, target: str, headers: dict[str, str], body: bytes) -> Reply:
        parts = urlsplit(target)
        path, query = unquote(parts.path), parse_qs(parts.query)
        with self.lock:
            self.requests.append(Request(method, path, query, headers, time.monotonic(), body))
            if path.startswith(f"/{self.tenant}/") or not path.startswith("/v1.0/"):
                return self._identity(method, path, body)
            for n, (part, status, retry_after) in enumerate(self._throttles):
                if part in path:
                    del self._throttles[n]
                    return _error(status, "TooManyRequests" if status == 429 else "ServiceUnavailable",
                                  "Application is over its MailboxConcurrency limit.",
                                  {"Retry-After": f"{retry_after:g}"})
            if not self._authorised(headers.get("Authorization", "")):
                return _error(401, "InvalidAuthenticationToken", "Access token validation failure.")
            lost = next((p for p in self._lose if p in path), None)
            reply = self.graph(method, path.removeprefix("/v1.0"), query, headers, body)
            if lost is not None:
                self._lose.discard(lost)
                return 0, {}, b""
            return reply

    def _authorised(self, authorization: str) -> bool:
        token = authorization.removeprefix("Bearer ")
        entry = self.tokens.get(token)
        return entry is not None and entry[1] > time.time()

    def _identity(self, method: str, path: str, body: bytes) -> Reply:
        tenant = path.split("/")[1]
        if tenant != self.tenant:
            return _json(400, {"error": "invalid_request", "error_description":
                               f"AADSTS90002: Tenant '{tenant}' not found."})
        base = f"{self.base}/{tenant}"
        if method == "GET" and path.endswith("/v2.0/.well-known/openid-configuration"):
            return _json(200, {"token_endpoint": f"{base}/oauth2/v2.0/token",
                               "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                               "issuer": f"{base}/v2.0", "token_endpoint_auth_methods_supported":
                               ["client_secret_post", "private_key_jwt", "client_secret_basic"]})
        if method == "POST" and path.endswith("/oauth2/v2.0/token"):
            form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
            return self._token(form, f"{base}/oauth2/v2.0/token")
        return _json(404, {"error": "not_found"})

    def _token(self, form: dict[str, str], endpoint: str) -> Reply:
        client = form.get("client_id", "")
        # the Graph resource's scope: graph.microsoft.com's, or this responder's own (it stands in for Graph)
        if form.get("grant_type") != "client_credentials" or form.get("scope") not in (GRAPH_SCOPE,
                                                                                        self.base + "/.default"):
            return _json(400, {"error": "invalid_request", "error_description": "AADSTS900144: bad request"})
        if client not in self.secrets and client not in self.certificates:
            return _json(400, {"error": "unauthorized_client", "error_description":
                               f"AADSTS700016: Application with identifier '{client}' was not found."})
        if "client_assertion" in form:
            try:
                jwt.decode(form["client_assertion"], self.certificates.get(client, b""), algorithms=["RS256", "PS256"],
                           audience=endpoint, issuer=client)
                ok = True
            except (jwt.PyJWTError, ValueError):
                ok = False
        else:
            ok = client in self.secrets and form.get("client_secret") == self.secrets[client]
        if not ok:
            return _json(401, {"error": "invalid_client", "error_description":
                               "AADSTS7000215: Invalid client secret provided."})
        token = base64.urlsafe_b64encode(uuid.uuid4().bytes * 2).decode()
        self.tokens[token] = (client, time.time() + self.token_lifetime)
        return _json(200, {"token_type": "Bearer", "expires_in": self.token_lifetime, "ext_expires_in":
                           self.token_lifetime, "access_token": token})

    def graph(self, method: str, path: str, query: dict[str, list[str]], headers: dict[str, str], body: bytes) -> Reply:
        from tests.graph import routes

        return routes.route(self, method, path, query, headers, body)

    def link(self, path: str, **params: str) -> str:
        return f"{self.graph_url}{quote(path)}?" + "&".join(f"{k}={quote(v)}" for k, v in params.items())

    def new_rule(self, address: str, body: dict[str, Any]) -> Rule:
        rule = Rule(new_id(), {**body})
        self.store.mailboxes[address].rules.append(rule)
        return rule
