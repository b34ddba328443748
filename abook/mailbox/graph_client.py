"""Microsoft Graph over HTTP for the Exchange Online backends: app-only sign-in, requests, errors, throttling.

Blocking, on the ``mail`` pool like EWS (never the reactor): ``requests`` (already pinned for exchangelib,
and the HTTP client MSAL itself uses) with one Session per app registration, its connections kept alive.
The official SDK (msgraph-sdk) was not taken: it is asyncio-based (kiota, httpx), which Twisted would have
to bridge on another event loop, and it pulls in dozens of packages to wrap the few calls used here.

Sign-in: MSAL ``ConfidentialClientApplication`` with a client secret or a certificate, one per app
registration per process (so its in-memory token cache is shared by every mailbox of that app). MSAL
answers from the cache and fetches a new token only when the cached one is about to expire; a 401
``InvalidAuthenticationToken`` drops the cached token and the request is tried once more. The authority
is ``{authority_host}/{tenant}`` with instance discovery off: the host is configured (national clouds
too), so MSAL never asks login.microsoftonline.com to vouch for it; the tenant is still validated by its
OpenID metadata. MSAL requires https; a private CA (``ca_file``) is honoured for sign-in and Graph alike.

Every request carries ``Prefer: IdType="ImmutableId"`` (ids survive moves between folders). Throttling
(429, 503 with ``Retry-After``): a wait up to ``max_retry_wait`` is waited out here and the request
retried once; a longer one raises ``RateLimited(retry_after)`` so the router backs the mailbox off and
counts it in its health. The access token, the secret and the certificate never reach a log or an error.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from typing import Any, Callable, Iterator, Optional
from urllib.parse import urlsplit

import msal
import requests
from twisted.logger import Logger

from abook.config.mail import GraphApp
from abook.mailbox._guard import Cutter
from abook.mailbox.errors import AuthFailed, CursorInvalid, MailboxError, MailboxMissing, MessageGone, RateLimited, Unavailable

IMMUTABLE_IDS = 'IdType="ImmutableId"'
#: MSAL logs request details at DEBUG; like exchangelib's, kept at WARNING unless configured otherwise
if logging.getLogger("msal").level == logging.NOTSET:
    logging.getLogger("msal").setLevel(logging.WARNING)
_MISSING = {"ErrorInvalidUser", "MailboxNotEnabledForRESTAPI", "MailboxNotFound", "ResourceNotFound",
            "ErrorNonExistentMailbox", "ErrorFolderNotFound"}
_GONE = {"ErrorItemNotFound", "ItemNotFound"}


class _Session(requests.Session):
    """Verifies servers against ``ca_file`` (else the system CAs). Set per request, since an environment's
    REQUESTS_CA_BUNDLE would otherwise win over ``Session.verify``."""

    def __init__(self, ca_file: Optional[str]) -> None:
        super().__init__()
        self.ca_file = ca_file

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if self.ca_file is not None and kwargs.get("verify") in (None, True):
            kwargs["verify"] = self.ca_file
        return super().request(method, url, *args, **kwargs)


class GraphAuth:
    """One app registration's MSAL client and HTTP session (shared, thread-safe)."""

    log = Logger()

    def __init__(self, app: GraphApp, ca_file: Optional[str], timeout: float) -> None:
        self.app = app
        self.session = _Session(ca_file)
        self.timeout = timeout
        graph = urlsplit(app.graph_url)
        self.scope = f"{graph.scheme}://{graph.netloc}/.default"
        self._msal: Optional[msal.ConfidentialClientApplication] = None
        self._lock = threading.Lock()

    def _credential(self) -> Any:
        a = self.app
        if a.client_secret is not None:
            return a.client_secret.reveal()
        assert a.certificate_file is not None
        passphrase = a.certificate_passphrase.reveal() if a.certificate_passphrase else None
        if a.certificate_file.lower().endswith((".pfx", ".p12")):
            return {"private_key_pfx_path": a.certificate_file, "passphrase": passphrase}
        try:
            pem = open(a.certificate_file, encoding="ascii").read()
        except OSError as e:
            raise AuthFailed(f"cannot read certificate_file {a.certificate_file}: {e.strerror}") from None
        cert = pem[pem.find("-----BEGIN CERTIFICATE-----"):]
        return {"private_key": pem, "public_certificate": cert, "passphrase": passphrase}

    def token(self, fresh: bool = False) -> str:
        a = self.app
        with self._lock:
            try:
                if self._msal is None:
                    self._msal = msal.ConfidentialClientApplication(
                        a.client_id, client_credential=self._credential(), authority=f"{a.authority_host}/{a.tenant}",
                        instance_discovery=False, http_client=self.session, timeout=self.timeout)
                if fresh:  # Graph refused the cached token: forget it
                    cache = self._msal.token_cache
                    for at in list(cache.search(msal.TokenCache.CredentialType.ACCESS_TOKEN)):
                        cache.remove_at(at)
                result = self._msal.acquire_token_for_client(scopes=[self.scope])
            except requests.RequestException as e:
                raise Unavailable(f"sign-in at {a.authority_host}: {type(e).__name__}: {_reason(e)}") from None
            except ValueError as e:  # MSAL: the tenant's OpenID metadata could not be read (unknown tenant)
                raise AuthFailed(f"sign-in at {a.authority_host}: tenant {a.tenant}: {str(e).split('.')[0]}") from None
        if "access_token" in result:
            return str(result["access_token"])
        error = str(result.get("error", "unknown"))
        code = str(result.get("error_description", "")).split(":")[0]  # the AADSTS code, not the whole text
        text = f"sign-in of app {a.client_id} in tenant {a.tenant} refused: {error} {code}".strip()
        if error in ("invalid_client", "unauthorized_client", "invalid_request", "invalid_scope"):
            raise AuthFailed(text)
        raise Unavailable(text)


_auths: dict[tuple[Any, ...], GraphAuth] = {}
_auths_lock = threading.Lock()


def auth_for(app: GraphApp, ca_file: Optional[str], timeout: float) -> GraphAuth:
    """The process's GraphAuth for this app registration (a changed secret gives a new one)."""
    secret = app.client_secret.reveal() if app.client_secret else ""
    key = (app.authority_host, app.tenant, app.client_id, hashlib.sha256(secret.encode()).hexdigest(),
           app.certificate_file, app.graph_url, ca_file)
    with _auths_lock:
        if key not in _auths:
            _auths[key] = GraphAuth(app, ca_file, timeout)
        return _auths[key]


def _reason(e: BaseException) -> str:
    text = str(e)
    return "TLS certificate not trusted (CERTIFICATE_VERIFY_FAILED)" if "CERTIFICATE_VERIFY_FAILED" in text else text[:300]


def _retry_after(response: requests.Response) -> Optional[float]:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None


class GraphError(MailboxError):
    """Graph answered with an error the router has no class for."""


class GraphClient:
    """Requests to Graph for one mailbox (``name`` labels its errors)."""

    def __init__(self, auth: GraphAuth, name: str, wait: Callable[[float], Any]) -> None:
        self.auth = auth
        self.name = name
        self._wait = wait
        #: the socket of the answer being read, which ``abort`` (any thread) shuts down: a server trickling
        #: its answer a few bytes at a time would never trip the per-read timeout
        self.cutter = Cutter()
        self.base = auth.app.graph_url
        self._origin = urlsplit(self.base)[:2]

    def url(self, path_or_link: str) -> str:
        if path_or_link.startswith("/"):
            return self.base + path_or_link
        if urlsplit(path_or_link)[:2] != self._origin:  # a stored link must never carry the token elsewhere
            raise CursorInvalid(f"{self.name}: a link outside {self.base}")
        return path_or_link

    def request(self, method: str, path: str, prefer: str = "", stream: bool = False, **kwargs: Any) -> requests.Response:
        """One Graph request, with a token, the ImmutableId preference, one retry for a short throttle or an
        expired token; an error answer raised as the router's error classes."""
        url = self.url(path)
        fresh, waited = False, False
        extra = kwargs.pop("headers", {})
        while True:
            headers = {"Authorization": "Bearer " + self.auth.token(fresh), "Prefer": ", ".join(
                p for p in (IMMUTABLE_IDS, prefer) if p), **extra}
            try:
                self.cutter.check()
                response = self.auth.session.request(method, url, headers=headers, stream=True,
                                                     timeout=self.auth.timeout, **kwargs)
                sock = getattr(getattr(response.raw, "_connection", None), "sock", None)
                if sock is not None:
                    self.cutter.attach(sock)
                if not stream or response.status_code >= 400:
                    self.read(response)
            except (requests.RequestException, OSError) as e:
                raise Unavailable(f"{self.name}: {self.base}: {self.failed_read(e)}") from None
            if response.status_code < 400:
                return response
            body = _error_of(response)
            code = body.get("code", "")
            if response.status_code == 401 and not fresh:
                fresh = True
                continue
            retry_after = _retry_after(response)
            if response.status_code in (429, 503, 504) and not waited:
                limit = self.auth.app.max_retry_wait
                if retry_after is not None and retry_after <= limit:
                    waited = True
                    self._wait(retry_after)
                    continue
            raise self._error(response.status_code, code, body.get("message", ""), retry_after)

    def _error(self, status: int, code: str, message: str, retry_after: Optional[float]) -> MailboxError:
        text = f"{self.name}: Graph {status} {code}: {message}"[:500]
        if status in (429, 503, 504) or code in ("TooManyRequests", "ApplicationThrottled"):
            if status == 429 or retry_after is not None:
                return RateLimited(text, retry_after=retry_after)
            return Unavailable(text)
        if status == 410 or code.lower() in ("syncstatenotfound", "syncstateinvalid", "resyncrequired"):
            return CursorInvalid(text)
        if status == 401:
            return AuthFailed(text)
        if status == 403:
            return AuthFailed(text + " (check the app's permissions and the application access policy / "
                                     "RBAC for Applications scope)")
        if status == 404 and code in _GONE:
            return MessageGone(text)
        if status == 404 or code in _MISSING:
            return MailboxMissing(text)
        if status >= 500:
            return Unavailable(text, retry_after=retry_after)
        return GraphError(text)

    def failed_read(self, e: BaseException) -> str:
        """Why a request or a read failed; a cut is forgotten once it has failed the operation it meant (the
        next operation connects again)."""
        self.cutter.detach()
        if self.cutter.is_cut:
            self.cutter.reset()
            return "cut short (deadline or shutdown)"
        return f"{type(e).__name__}: {_reason(e)}"

    def read(self, response: requests.Response) -> bytes:
        """The answer's body, read while ``abort`` can cut it; the socket is let go of after."""
        try:
            return response.content
        finally:
            self.cutter.detach()

    def json(self, method: str, path: str, prefer: str = "", **kwargs: Any) -> Any:
        response = self.request(method, path, prefer=prefer, **kwargs)
        return response.json() if response.content else None

    def pages(self, path: str, prefer: str = "") -> Iterator[dict[str, Any]]:
        """A collection's entries, following ``@odata.nextLink``."""
        link: Optional[str] = path
        while link:
            page = self.json("GET", link, prefer=prefer)
            yield from page.get("value", [])
            link = page.get("@odata.nextLink")

    def batch(self, requests_: list[dict[str, Any]], check: bool = True) -> dict[str, dict[str, Any]]:
        """JSON batching, 20 requests per round trip: id -> {"status", "body"}. With ``check`` a failed inner
        request raises as it would alone; without, its error is left in its reply for the caller."""
        out: dict[str, dict[str, Any]] = {}
        for start in range(0, len(requests_), 20):
            chunk = requests_[start:start + 20]
            for reply in self.json("POST", "/$batch", json={"requests": chunk})["responses"]:
                status = int(reply["status"])
                body = reply.get("body") if isinstance(reply.get("body"), dict) else {}
                out[str(reply["id"])] = {"status": status, "body": body}
                if status >= 400 and check:
                    raise self.error_of_reply(out[str(reply["id"])], (reply.get("headers") or {}).get("Retry-After"))
        return out

    def error_of_reply(self, reply: dict[str, Any], retry_after: Optional[str] = None) -> MailboxError:
        error = reply["body"].get("error", {}) if isinstance(reply.get("body"), dict) else {}
        return self._error(reply["status"], error.get("code", ""), error.get("message", ""),
                           float(retry_after) if retry_after else None)


def _error_of(response: requests.Response) -> dict[str, Any]:
    try:
        error = response.json().get("error", {})
        return error if isinstance(error, dict) else {}
    except ValueError:
        return {}
