"""Bind policy: who a simple bind names, how the password is checked, and failed-bind rate limits.

A bind names a CRM user by DN (``uid=<id>,ou=Users,<suffix>``), by user name (``domainname``) or by email
address (``internalemailaddress``), case-insensitively. The password is checked against the user's local
argon2 hash, or passed through to an upstream directory with ldap3 (``ldap.auth = "upstream"``); both run
on the ``auth`` thread pool, never on the reactor. Unknown users and wrong passwords fail the same way
(invalidCredentials, the same message) and take about as long: an unknown user's password is verified
against a dummy hash. Inactive users cannot bind. ``auth = "upstream"`` never falls back to the local
hashes: a config without ``[ldap.upstream]`` is refused (config/model.py), and so is an Authenticator.

**Verification cache.** argon2 costs 10-30 ms of CPU by design, and Thunderbird binds on every keystroke.
Successful verifications are remembered for ``ldap.bind_cache_seconds`` (default 60; 0 turns it off) as
HMAC-SHA256(process-random key, user id + stored hash + password) -> expiry. The password itself is never
kept, the key never leaves the process and changes on every start, and the stored hash is part of the
key, so a password change (or a user's removal) invalidates the entry at once. Failures are never cached.

**Limits.** ``bindlimit.BindGate`` limits failed binds per client address and per bind name, counting
the checks in flight, and can lock a name after failed binds in a row (ppolicy style); see there. A
refused bind gets busy (51), a locked name invalidCredentials (49), both without a password check;
refusals are logged once per address (or name) per minute, never with the password. Password checks
run on the ``auth`` pool through a ``FairQueue`` keyed by client address: one address gets at most half
of its threads (at least one), addresses take turns, and at most ``MAX_WAITING_CHECKS`` wait in all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING, Any, NoReturn

from ldaptor.protocols.ldap import ldaperrors
from twisted.internet import defer
from twisted.logger import Logger
from zope.interface import implementer

from abook.config import placeholders
from abook.config.model import LdapConfig, LdapUpstream
from abook.directory.api import BoundIdentity, IAuthenticator
from abook.directory.bindlimit import LOCKED, WINDOW, BindGate
from abook.directory.tree import BadDN, Tree
from abook.errors import ConfigError
from abook.passwords import hash_password, verify_password
from abook.scheduling import FairQueue, QueueFull
from abook.store import owners, security
from abook.store.users import BindCandidate, bind_candidate_txn
from abook.store.outage import StoreOutage
from abook.threads import IBlockingRunner

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

INVALID = "invalid credentials"


def find_bind_user_txn(session: Session, tree: Tree, name: str) -> BindCandidate | None:
    """The one user a bind name denotes (DN, user name or email address), or None."""
    if "=" in name:
        try:
            loc = tree.locate(name)
        except BadDN:
            return None
        if loc.kind != "entry" or loc.book != "Users" or not loc.record_id:
            return None
        ids = owners.user_ids_for_id_txn(session, loc.record_id)
    else:
        ids = owners.user_ids_for_name_txn(session, name)
    if len(ids) != 1:
        return None
    return bind_candidate_txn(session, ids[0])


def upstream_bind_blocking(upstream: LdapUpstream, candidate: BindCandidate, password: str) -> bool:
    """Simple bind to the upstream directory as the user; True on success. Runs on a worker thread."""
    import ssl

    from ldap3 import NONE, Connection, Server, Tls
    from ldap3.core.exceptions import LDAPException
    from ldap3.utils.dn import escape_rdn

    dn = placeholders.fill(upstream.bind_dn, candidate.domainname, candidate.mail, candidate.user_id, escape_rdn)
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


#: password checks waiting for the ``auth`` pool, from all addresses; more are refused with busy (51)
MAX_WAITING_CHECKS = 256


@implementer(IAuthenticator)
class Authenticator:
    """Checks simple binds; fires with a ``BoundIdentity`` or fails with an ldaptor LDAP error.

    Order of a bind: refusals that need no work (``BindGate.early``); the user lookup; a password
    verified within ``bind_cache_seconds`` (no guess: it needs no slot); a slot (``BindGate.reserve``);
    the password check on the ``auth`` pool through a ``FairQueue`` keyed by client address, where one
    address may use at most half the pool's threads (at least one) and addresses take turns.
    """

    log = Logger()

    def __init__(self, store: Any, runner: IBlockingRunner, clock: Any, config: LdapConfig) -> None:
        if config.auth == "upstream" and config.upstream is None:
            # never check the local hashes instead: the admin chose the upstream directory (config/model.py)
            raise ConfigError('auth = "upstream" needs an [ldap.upstream] table', path="ldap.upstream")
        self._store = store
        self._clock = clock
        self._config = config
        self._tree = Tree(config.suffix)
        limits = config.limits
        self._gate = BindGate(clock, self._tree, limits.failed_binds_per_minute,
                              limits.failed_binds_per_name_per_minute, limits.lockout_failures,
                              limits.lockout_seconds)
        threads = config.auth_threads
        self._checks = FairQueue(runner, threads, (max(1, threads // 2),), max_waiting=MAX_WAITING_CHECKS)
        self._key = secrets.token_bytes(32)
        self._cache: dict[bytes, float] = {}
        self._dummy_hash = hash_password(secrets.token_urlsafe(16))
        #: (refusal, address or name) -> when it was last logged: one line per window, not one per bind
        self._logged: dict[tuple, float] = {}

    def authenticate(self, name: str, password: str, source: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._authenticate(name, password, source))

    async def _authenticate(self, name: str, password: str, source: str) -> BoundIdentity:
        gate = self._gate
        key = gate.name_key(name)
        refused = gate.early(source, key)
        if refused is not None:
            self._refuse(refused, source, name, key)
        candidate = await self._read(find_bind_user_txn, self._tree, name)
        if self._cache_hit(candidate, password):
            assert candidate is not None
            principal = await self._read(security.load_principal_txn, candidate.user_id)
            if principal is not None:
                gate.succeeded(key)
                return BoundIdentity(self._tree.entry_dn("systemuser", candidate.user_id), candidate.user_id,
                                     principal)
        refused = gate.reserve(source, key)
        if refused is not None:
            self._refuse(refused, source, name, key)
        outcome = "failed"  # a check that ends any other way (cancelled, an error) counts as a failure
        try:
            ok = await self._check(candidate, password, source)
            principal = None
            if ok and candidate is not None and candidate.active:
                principal = await self._read(security.load_principal_txn, candidate.user_id)
            if candidate is None or principal is None:
                self.log.info("failed bind from {address} as {name}", address=source, name=name[:256])
                raise ldaperrors.LDAPInvalidCredentials(INVALID)
            outcome = "ok"
            return BoundIdentity(self._tree.entry_dn("systemuser", candidate.user_id), candidate.user_id, principal)
        except UpstreamUnavailable as e:
            outcome = "void"  # no answer about the password: neither a failure nor a success
            self.log.warn("upstream directory unreachable for a bind from {address}: {error}",
                          address=source, error=str(e))
            raise ldaperrors.LDAPUnavailable("authentication service unavailable") from None
        except QueueFull:
            outcome = "void"
            self._refuse("queue", source, name, key)
        except StoreOutage:  # no answer about the user: answered unavailable (52) or busy (51)
            outcome = "void"
            raise
        finally:
            gate.finish(source, key, failed=outcome == "failed", succeeded=outcome == "ok")

    def _read(self, f: Any, *args: Any) -> defer.Deferred:
        """A store read within ``store.timeout_seconds``: a frozen database fails the bind, never holds it."""
        return self._store.read(f, *args)

    def _refuse(self, why: str, source: str, name: str, key: bytes) -> NoReturn:
        now = self._clock.seconds()
        subject = key if why == LOCKED else source
        if now - self._logged.get((why, subject), -WINDOW) >= WINDOW:
            if len(self._logged) >= 10_000:
                self._logged = {k: t for k, t in self._logged.items() if now - t < WINDOW}
            self._logged[(why, subject)] = now
            if why == LOCKED:
                self.log.warn("bind refused: {name} is locked after failed binds (from {address})",
                              name=name[:256], address=source)
            elif why == "queue":
                self.log.warn("bind refused: too many password checks waiting (from {address})", address=source)
            else:
                self.log.warn("bind refused: too many failed binds from {address} or as {name}", address=source,
                              name=name[:256])
        if why == LOCKED:  # as slapd's ppolicy answers a locked account: like a wrong password
            raise ldaperrors.LDAPInvalidCredentials(INVALID)
        if why == "queue":
            raise ldaperrors.LDAPBusy("too many binds in progress; try again later")
        raise ldaperrors.LDAPBusy("too many failed binds; try again later")

    def _cache_key(self, candidate: BindCandidate, password: str) -> bytes:
        material = "\0".join((candidate.user_id, candidate.password_hash or "", password)).encode("utf-8")
        return hmac.new(self._key, material, hashlib.sha256).digest()

    def _cache_hit(self, candidate: BindCandidate | None, password: str) -> bool:
        """The password was verified for this user (and this stored hash) within ``bind_cache_seconds``."""
        if (self._config.bind_cache_seconds <= 0 or self._config.auth != "local" or candidate is None
                or not candidate.password_hash or not candidate.active):
            return False
        return self._cache.get(self._cache_key(candidate, password), 0.0) > self._clock.seconds()

    async def _check(self, candidate: BindCandidate | None, password: str, source: str) -> bool:
        """The password check proper (argon2 or the upstream bind), on the ``auth`` pool, fairly."""
        if self._config.auth == "upstream":
            if candidate is None or not candidate.active:
                return False
            return bool(await self._checks.run((source,), upstream_bind_blocking, self._config.upstream,
                                               candidate, password))
        if candidate is None or not candidate.password_hash or not candidate.active:
            await self._checks.run((source,), verify_password, self._dummy_hash, password)
            return False
        ok = await self._checks.run((source,), verify_password, candidate.password_hash, password)
        ttl = self._config.bind_cache_seconds
        if ok and ttl > 0:
            now = self._clock.seconds()
            if len(self._cache) >= 10_000:
                self._cache = {k: t for k, t in self._cache.items() if t > now}
                if len(self._cache) >= 10_000:
                    self._cache.clear()
            self._cache[self._cache_key(candidate, password)] = now + ttl
        return bool(ok)


__all__ = ["Authenticator", "BoundIdentity", "find_bind_user_txn"]  # BoundIdentity: from api, re-exported
