"""Signing up and signing in to the dashboard: the rules, the limits and the one answer for
every failed sign-in. Password hashing runs in a thread: argon2id is meant to be slow.

Sign-in limits hold a spray without handing strangers a lock on someone's account:

- from a device not known to the account, an attempt must pass three budgets: its address's
  (guessing many accounts), the account's from that address (guessing one account), and the
  account's for all unknown devices (guessing one account from many addresses). The pair's
  budget refills slower than the account's, so one address alone never exhausts the latter;
- from a known device (control_plane/auth/devices.py), only that device's own budget for the account:
  whatever strangers spend, the owner's browser still signs in.

Each attempt is charged before the password is checked (so concurrent guesses cannot slip past
the count) and given back when it succeeds or when a later budget refuses it: only failures count."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import timedelta

from psycopg.errors import UniqueViolation

from control_plane.auth.devices import device_digest
from control_plane.auth.peers import address_bucket
from control_plane.auth.ratelimit import RateLimiter
from control_plane.deps import ApiDeps
from control_plane.problems import Conflict, Forbidden, InvalidRequest, NotFound, RateLimited, SignInFailed
from infra.passwords import hash_password, needs_rehash, password_problem, verify
from infra.repo import User
from infra.repo.users import normal_email
from pipeline.errors import FieldError

__all__ = ["INVITE_LIFETIME", "accept_invite", "account_key", "email_errors", "sign_in", "sign_up"]

INVITE_LIFETIME = timedelta(days=7)

_EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s.]+(\.[^@\s.]+)+")
_SLUG = re.compile(r"[^a-z0-9]+")


Budget = tuple[RateLimiter, str, str]  # the limiter, its key, what it counts (for the message)


async def _charge(budgets: list[Budget]) -> None:
    """One attempt from each budget in turn; 429 from the first that refuses, the others given back."""
    charged: list[Budget] = []
    for limiter, key, what in budgets:
        decision = await limiter.hit(key)
        if not decision.allowed:
            await _refund(charged)
            raise RateLimited(f"too many {what}; try again later", code=f"{limiter.name}_limited".replace("-", "_"),
                              headers=decision.headers())  # fmt: skip
        charged.append((limiter, key, what))


async def _refund(budgets: list[Budget]) -> None:
    for limiter, key, _ in budgets:
        await limiter.refund(key)


def email_errors(email: str) -> list[FieldError]:
    """The one rule for an address people sign up or are invited with."""
    if len(email) > 254 or not _EMAIL.fullmatch(normal_email(email)):
        return [FieldError("$.email", "enter an email address such as ada@example.com")]
    return []


def account_key(email: str) -> str:
    """What limits and known devices name an account by: Redis holds a digest, not the address."""
    return hashlib.sha256(normal_email(email).encode()).hexdigest()[:32]


def _sign_in_budgets(deps: ApiDeps, account: str, address: str, device: str | None) -> list[Budget]:
    if device is not None:  # known to this account
        return [(deps.sign_ins_per_device, f"{device_digest(device)}:{account}", "sign-in attempts from this device")]
    where = address_bucket(address)
    return [
        (deps.sign_ins_per_address, where, "sign-in attempts from this address"),
        (deps.sign_ins_per_account_address, f"{account}:{where}", "sign-in attempts for this account from here"),
        (deps.sign_ins_per_account, account, "sign-in attempts for this account from new devices"),
    ]


async def sign_in(deps: ApiDeps, email: str, password: str, address: str, device: str | None) -> User:
    """The user, or 401 ``invalid_credentials``: the same status, body and work (one argon2id
    verification) for an unknown email, a disabled account and a wrong password. ``device``: the
    browser's ``pixelflow_device`` cookie, if it sent one."""
    account = account_key(email)
    known = device if await deps.devices.knows(device, account) else None
    budgets = _sign_in_budgets(deps, account, address, known)
    await _charge(budgets)
    found = await deps.users.credentials(email) if len(email) <= 320 else None
    stored = found[1] if found else None
    ok = await asyncio.to_thread(verify, stored, password[:1024])
    if not ok or found is None:
        raise SignInFailed("the email or password is wrong")
    await _refund(budgets)  # only failures count
    user, stored = found
    if needs_rehash(stored):  # parameters raised since it was hashed
        await deps.users.set_hash(user.id, await asyncio.to_thread(hash_password, password))
    return user


async def sign_up(deps: ApiDeps, email: str, password: str, address: str) -> User:
    """A new client with this person as its owner; 403 ``signup_closed`` unless sign-up is open."""
    if deps.settings.signup != "open":
        raise Forbidden("sign-up is closed here; ask an administrator for an account", code="signup_closed")
    await _charge([(deps.sign_ups_per_address, address_bucket(address), "sign-ups from this address")])
    email = normal_email(email)
    errors = email_errors(email)
    if problem := password_problem(password, email):
        errors.append(FieldError("$.password", problem))
    if errors:
        raise InvalidRequest("check the highlighted fields", errors=errors)
    if await deps.users.credentials(email) is not None:
        raise Conflict("an account with this email exists; sign in instead", code="email_taken")
    digest = await asyncio.to_thread(hash_password, password)
    # A client per sign-up, named after the address plus a random suffix (names are unique).
    name = f"{_SLUG.sub('-', email.split('@')[0]).strip('-')[:40] or 'client'}-{secrets.token_hex(3)}"
    client, _secret = await deps.clients.create(name)
    try:
        return await deps.users.create(client.id, email, digest, "owner")
    except UniqueViolation:  # the same email signed up in the same instant
        await deps.clients.delete(client.id)
        raise Conflict("an account with this email exists; sign in instead", code="email_taken") from None


async def accept_invite(deps: ApiDeps, token: str, password: str, address: str) -> User:
    """The invited person's new account, in the inviting client, whether or not sign-up is open."""
    await _charge([(deps.sign_ups_per_address, address_bucket(address), "sign-ups from this address")])
    invite = await deps.users.invitation(token) if len(token) <= 100 else None
    if invite is None:
        raise NotFound("the invitation is unknown, used or expired; ask for a new one", code="invite_invalid")
    if problem := password_problem(password, invite.email):
        raise InvalidRequest("check the highlighted fields", errors=[FieldError("$.password", problem)])
    digest = await asyncio.to_thread(hash_password, password)
    try:
        user = await deps.users.accept_invite(token, digest)
    except UniqueViolation:
        raise Conflict("an account with this email exists; sign in instead", code="email_taken") from None
    if user is None:  # accepted in another tab meanwhile
        raise NotFound("the invitation is unknown, used or expired; ask for a new one", code="invite_invalid")
    return user
