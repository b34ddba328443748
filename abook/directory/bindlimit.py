"""Failed-bind limits that concurrency cannot get round: ``BindGate``.

A bind that is going to check a password first *reserves a slot* with its client address and with the
name it binds as; the slot is given back when the check ends, and kept as a failure if the check failed.
A limit counts the failures of the last minute *and* the slots in use, so a hundred binds sent at once
from one address get at most ``failed_binds_per_minute`` password checks between them: the others are
refused with busy (51) before any check, right password or not.

Two limits and an optional lockout:

* per client address: ``limits.failed_binds_per_minute`` (default 10);
* per bind name, from all addresses together: ``limits.failed_binds_per_name_per_minute`` (default 20,
  above the per-address limit so that one address alone cannot keep a name blocked);
* ``limits.lockout_failures`` failed binds in a row (default 0: off) lock the name for
  ``limits.lockout_seconds`` (default 300), as slapd's ppolicy overlay does (pwdMaxFailure,
  pwdLockoutDuration): while locked, every bind as that name fails with invalidCredentials (49), the
  answer to a wrong password, without a password check. A successful bind ends the run of failures;
  failures are forgotten once ``lockout_seconds`` pass without one.

**Names, not accounts.** The name is the one the bind gives (a DN, a user name or a mail address), folded
to lower case (a DN to its ``uid`` value), and it is counted whether or not a user has it. Counting per
account would have to resolve the name first, and then whoever exhausted one name could tell whether
another name is the same account (both refused) or none at all (still answered): a list of which names
exist. Counted per name, an unknown name is limited and locked exactly like a known one, with the same
result codes at the same points. The price: an account reachable by k names (DN, id, user name, mail)
gets k times the per-name allowance.

Everything here runs on the reactor thread; the tables forget quiet entries, so they stay bounded.
"""

from __future__ import annotations

import hashlib
from collections import deque
from typing import Any

from abook.directory.tree import Tree

WINDOW = 60.0
#: refusals a bind gets: the address or name is over its rate limit / the name is locked
BUSY, LOCKED = "busy", "locked"
_TABLE_SWEEP = 10_000


class _Count:
    __slots__ = ("failures", "in_flight", "streak", "last_failure", "locked_until")

    def __init__(self) -> None:
        self.failures: deque[float] = deque()  # times of the failures within the window
        self.in_flight = 0
        self.streak = 0  # failures in a row (the lockout)
        self.last_failure = 0.0
        self.locked_until = 0.0

    def recent(self, now: float) -> int:
        q = self.failures
        while q and q[0] <= now - WINDOW:
            q.popleft()
        return len(q)

    def quiet(self, now: float, forget_after: float) -> bool:
        return (not self.in_flight and not self.recent(now) and self.locked_until <= now
                and (not self.streak or now - self.last_failure > forget_after))


class BindGate:
    """Decides, before a password is checked, whether it may be; told how each check ended."""

    def __init__(self, clock: Any, tree: Tree, per_address: int, per_name: int, lockout_failures: int = 0,
                 lockout_seconds: float = 300.0) -> None:
        self._clock = clock
        self._tree = tree
        self.per_address = per_address
        self.per_name = per_name
        self.lockout_failures = lockout_failures
        self.lockout_seconds = lockout_seconds
        self._addresses: dict[str, _Count] = {}
        self._names: dict[bytes, _Count] = {}

    def name_key(self, name: str) -> bytes:
        """The counted form of a bind name (a digest: names are attacker-chosen and up to 4 KB long)."""
        text = name.strip().lower()
        if "=" in text:
            try:
                loc = self._tree.locate(text)
            except Exception:  # noqa: BLE001 - ldaptor's DN parser raises anything on bad input; the text stays
                loc = None
            if loc is not None and loc.kind == "entry" and loc.book == "Users" and loc.record_id:
                text = loc.record_id.lower()  # uid=<id>,ou=Users,<suffix> is the same name as <id>
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()

    def _get(self, table: dict, key: Any) -> _Count:
        count = table.get(key)
        if count is None:
            if len(table) >= _TABLE_SWEEP:
                self._sweep(table)
            count = table[key] = _Count()
        return count

    def _sweep(self, table: dict) -> None:
        now = self._clock.seconds()
        for key in [k for k, c in table.items() if c.quiet(now, self.lockout_seconds)]:
            del table[key]

    def _forget_if_quiet(self, table: dict, key: Any, count: _Count) -> None:
        if count.quiet(self._clock.seconds(), self.lockout_seconds):
            table.pop(key, None)

    def early(self, address: str, name: bytes) -> str | None:
        """Refuse without any work: the address is over its limit, or the name is locked."""
        now = self._clock.seconds()
        a = self._addresses.get(address)
        if a is not None and a.recent(now) >= self.per_address:
            return BUSY
        n = self._names.get(name)
        if n is not None and n.locked_until > now:
            return LOCKED
        return None

    def reserve(self, address: str, name: bytes) -> str | None:
        """Take a slot for a password check, or say why not (failures and checks in flight count)."""
        now = self._clock.seconds()
        a = self._get(self._addresses, address)
        n = self._get(self._names, name)
        verdict = None
        if self.lockout_failures and (n.locked_until > now or n.streak + n.in_flight >= self.lockout_failures):
            verdict = LOCKED
        elif a.recent(now) + a.in_flight >= self.per_address or n.recent(now) + n.in_flight >= self.per_name:
            verdict = BUSY
        if verdict is not None:
            self._forget_if_quiet(self._addresses, address, a)
            self._forget_if_quiet(self._names, name, n)
            return verdict
        a.in_flight += 1
        n.in_flight += 1
        return None

    def succeeded(self, name: bytes) -> None:
        """A bind as ``name`` succeeded without a check (a cached verification): its run of failures ends."""
        n = self._names.get(name)
        if n is not None:
            n.streak = 0
            self._forget_if_quiet(self._names, name, n)

    def finish(self, address: str, name: bytes, failed: bool, succeeded: bool = False) -> None:
        """Give back a slot: ``failed`` keeps it as a failure; ``succeeded`` ends the name's run of failures.
        (Neither: the check could not be made, e.g. the upstream directory was unreachable.)"""
        now = self._clock.seconds()
        a = self._get(self._addresses, address)
        n = self._get(self._names, name)
        a.in_flight = max(0, a.in_flight - 1)
        n.in_flight = max(0, n.in_flight - 1)
        if failed:
            for c, cap in ((a, self.per_address), (n, self.per_name)):
                c.failures.append(now)
                while len(c.failures) > cap * 2:
                    c.failures.popleft()
            if self.lockout_failures:
                if n.streak and now - n.last_failure > self.lockout_seconds:
                    n.streak = 0
                n.streak += 1
                n.last_failure = now
                if n.streak >= self.lockout_failures:
                    n.locked_until = now + self.lockout_seconds
                    n.streak = 0
        elif succeeded:
            n.streak = 0
        self._forget_if_quiet(self._addresses, address, a)
        self._forget_if_quiet(self._names, name, n)


__all__ = ["BUSY", "LOCKED", "BindGate", "WINDOW"]
