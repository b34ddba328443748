"""Bind policy: who a simple bind names, how the password is checked, and failed-bind rate limits.

A bind names a CRM user by DN (``uid=<id>,ou=Users,<suffix>``), by user name (``domainname``) or by email
address (``internalemailaddress``), case-insensitively. The password is checked against the user's local
argon2 hash, or passed through to an upstream directory with ldap3 (``ldap.auth = "upstream"``); both run
on the ``auth`` thread pool, never on the reactor. Unknown users and wrong passwords fail the same way
(invalidCredentials, the same message) and take about as long: an unknown user's password is verified
against a dummy hash. Inactive users cannot bind.

**Verification cache.** argon2 costs 10-30 ms of CPU by design, and Thunderbird binds on every keystroke.
Successful verifications are remembered for ``ldap.bind_cache_seconds`` (default 60; 0 turns it off) as
HMAC-SHA256(process-random key, user id + stored hash + password) -> expiry. The password itself is never
kept, the key never leaves the process and changes on every start, and the stored hash is part of the
key, so a password change (or a user's removal) invalidates the entry at once. Failures are never cached.

**Rate limit.** More than ``limits.failed_binds_per_minute`` failed binds from one source address within
60 s make further binds from it fail with busy (51), without checking the password, until the window
slides; each refusal is logged once per window, never with the password.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections import deque
from dataclasses import dataclass
from typing import Any

from ldaptor.protocols.ldap import ldaperrors
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from twisted.internet import defer
from twisted.logger import Logger

from abook.config.model import LdapConfig, LdapUpstream
from abook.directory.tree import BadDN, Tree
from abook.passwords import hash_password, verify_password
from abook.store import models, security
from abook.store.records import Principal
from abook.threads import IBlockingRunner

INVALID = "invalid credentials"
WINDOW = 60.0


@dataclass(frozen=True)
class BindCandidate:
    user_id: str
    domainname: str
    mail: str
    password_hash: str | None
    active: bool


@dataclass(frozen=True)
class BoundIdentity:
    dn: str
    user_id: str
    principal: Principal


def find_bind_user_txn(session: Session, tree: Tree, name: str) -> BindCandidate | None:
    """The one user a bind name denotes (DN, user name or email address), or None."""
    U = models.SystemUser
    if "=" in name:
        try:
            loc = tree.locate(name)
        except BadDN:
            return None
        if loc.kind != "entry" or loc.book != "Users" or not loc.record_id:
            return None
        ids = list(session.scalars(select(U.id).where(func.lower(U.id) == loc.record_id.lower())))
    else:
        ids = security.user_ids_for_name_txn(session, name)
    if len(ids) != 1:
        return None
    r = session.execute(
        select(U.id, U.domainname, U.internalemailaddress, U.password_hash, U.statecode).where(U.id == ids[0])
    ).one()
    return BindCandidate(r.id, r.domainname or "", r.internalemailaddress or "", r.password_hash,
                         r.statecode == models.State.active)


def upstream_bind_blocking(upstream: LdapUpstream, candidate: BindCandidate, password: str) -> bool:
    """Simple bind to the upstream directory as the user; True on success. Runs on a worker thread."""
    import ssl

    from ldap3 import NONE, Connection, Server, Tls
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.dn import escape_rdn

    dn = upstream.bind_dn.format(
        username=escape_rdn(candidate.domainname), mail=escape_rdn(candidate.mail), id=escape_rdn(candidate.user_id)
    )
    tls = Tls(ca_certs_file=upstream.ca_file, validate=ssl.CERT_REQUIRED) if upstream.ca_file else None
    server = Server(upstream.url, connect_timeout=upstream.timeout, get_info=NONE, tls=tls)
    # ldap3 packs receive_timeout as whole seconds
    conn = Connection(server, user=dn, password=password, receive_timeout=max(1, round(upstream.timeout)),
                      read_only=True)
    try:
        return bool(conn.bind())
    except LDAPException as e:
        raise UpstreamUnavailable(type(e).__name__) from None
    finally:
        try:
            conn.unbind()
        except LDAPException:
            pass


class UpstreamUnavailable(Exception):
    """The upstream directory could not be reached (not a wrong password)."""


class FailedBindLimiter:
    """Counts failed binds per source address over a sliding minute."""

    def __init__(self, clock: Any, per_minute: int) -> None:
        self._clock = clock
        self._limit = per_minute
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        now = self._clock.seconds()
        q = self._failures.get(address)
        if q is None:
            return deque()
        while q and q[0] <= now - WINDOW:
            q.popleft()
        if not q:
            del self._failures[address]
        return q

    def blocked(self, address: str) -> bool:
        return len(self._recent(address)) >= self._limit

    def failed(self, address: str) -> None:
        if len(self._failures) > 10_000:  # forget quiet addresses so the table stays bounded
            for a in list(self._failures):
                self._recent(a)
        self._failures.setdefault(address, deque()).append(self._clock.seconds())
        q = self._failures[address]
        while len(q) > self._limit * 2:
            q.popleft()


class Authenticator:
    """Checks simple binds; fires with a ``BoundIdentity`` or fails with an ldaptor LDAP error."""

    log = Logger()

    def __init__(self, store: Any, runner: IBlockingRunner, clock: Any, config: LdapConfig) -> None:
        self._store = store
        self._runner = runner
        self._clock = clock
        self._config = config
        self._tree = Tree(config.suffix)
        self._limiter = FailedBindLimiter(clock, config.limits.failed_binds_per_minute)
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, float] = {}
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))

    def authenticate(self, name: str, password: str, source: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._authenticate(name, password, source))

    async def _authenticate(self, name: str, password: str, source: str) -> BoundIdentity:
        if self._limiter.blocked(source):
            self.log.warn("bind refused: too many failed binds from {address}", address=source)
            raise ldaperrors.LDAPBusy("too many failed binds; try again later")
        candidate = await self._store.run(find_bind_user_txn, self._tree, name)
        ok = False
        try:
            if self._config.auth == "upstream" and self._config.upstream is not None:
                if candidate is not None and candidate.active:
                    ok = await self._runner.run(upstream_bind_blocking, self._config.upstream, candidate, password)
            else:
                ok = await self._check_local(candidate, password)
        except UpstreamUnavailable as e:
            self.log.warn("upstream directory unreachable for a bind from {address}: {error}",
                          address=source, error=str(e))
            raise ldaperrors.LDAPUnavailable("authentication service unavailable") from None
        principal = None
        if ok and candidate is not None and candidate.active:
            principal = await self._store.run(security.load_principal_txn, candidate.user_id)
        if principal is None:
            self._limiter.failed(source)
            self.log.info("failed bind from {address} as {name}", address=source, name=name[:256])
            raise ldaperrors.LDAPInvalidCredentials(INVALID)
        return BoundIdentity(self._tree.entry_dn("systemuser", candidate.user_id), candidate.user_id, principal)

    def _cache_key(self, candidate: BindCandidate, password: str) -> bytes:
        material = "\0".join((candidate.user_id, candidate.password_hash or "", password)).encode("utf-8")
        return hmac.new(self._key, material, hashlib.sha256).digest()

    async def _check_local(self, candidate: BindCandidate | None, password: str) -> bool:
        if candidate is None or not candidate.password_hash or not candidate.active:
            await self._runner.run(verify_password, self._dummy_hash, password)
            return False
        ttl = self._config.bind_cache_seconds
        key = self._cache_key(candidate, password) if ttl > 0 else b""
        now = self._clock.seconds()
        if ttl > 0 and self._cache.get(key, 0.0) > now:
            return True
        ok = await self._runner.run(verify_password, candidate.password_hash, password)
        if ok and ttl > 0:
            if len(self._cache) >= 10_000:
                self._cache = {k: t for k, t in self._cache.items() if t > now}
                if len(self._cache) >= 10_000:
                    self._cache.clear()
            self._cache[key] = now + ttl
        return bool(ok)


__all__ = ["Authenticator", "BoundIdentity", "FailedBindLimiter", "find_bind_user_txn"]
