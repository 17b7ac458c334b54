"""Dashboard passwords: argon2id through argon2-cffi (RFC 9106's second recommended profile:
64 MiB, 3 passes, 4 lanes), and the rules a new password must meet.

``verify`` takes the same time whether or not an account exists: with no stored hash it checks
against a dummy hash made with the same parameters, so timing never tells an attacker which
emails have accounts."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

__all__ = ["MAX_LENGTH", "MIN_LENGTH", "hash_password", "needs_rehash", "password_problem", "verify"]

MIN_LENGTH = 10
MAX_LENGTH = 256  # argon2 hashes any length; this only bounds the work a request can ask for

_HASHER = PasswordHasher()  # argon2id; no I/O, no hashing at import


@cache
def _dummy() -> str:
    return _HASHER.hash("pixelflow-no-such-account")


def password_problem(password: str, email: str) -> str | None:
    """Why a new password is refused, or None. Length is what matters (NIST SP 800-63B): no
    composition rules, but not the email, not one repeated character."""
    if len(password) < MIN_LENGTH:
        return f"use at least {MIN_LENGTH} characters"
    if len(password) > MAX_LENGTH:
        return f"use at most {MAX_LENGTH} characters"
    lowered, address = password.lower(), email.strip().lower()
    if address and (address in lowered or lowered in address):
        return "the password must not contain the email address"
    if len(set(password)) < 4:
        return "use more than three different characters"
    return None


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """True if ``password`` matches ``stored``; with ``stored`` None, the same work, then False."""
    try:
        return _HASHER.verify(stored or _dummy(), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _HASHER.check_needs_rehash(stored)
