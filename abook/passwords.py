"""Password hashing: argon2id via argon2-cffi. Only hashes are stored; plain passwords never logged."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# Moderate cost: a bind verifies in a few milliseconds on this machine's cores (binds happen on every
# Thunderbird keystroke, so the LDAP server caches successful verifications briefly; see server/).
_hasher = PasswordHasher(time_cost=2, memory_cost=19 * 1024, parallelism=1)


def hash_password(password: str) -> str:
    if not password:
        raise ValueError("an empty password cannot be set")
    return _hasher.hash(password)


def verify_password(stored_hash: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored_hash``; False for a mismatch or a missing/garbled hash."""
    if not stored_hash or not password:
        return False
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False

