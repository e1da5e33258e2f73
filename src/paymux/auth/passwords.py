"""Passwords: Argon2id hashes and the policy (length, not a common password, not the username)."""

from __future__ import annotations

import asyncio
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from paymux.auth.common_passwords import MIN_LENGTH, common_passwords

MAX_LENGTH = 256


class PasswordPolicyError(ValueError):
    pass


@lru_cache(maxsize=1)
def hasher() -> PasswordHasher:
    """Argon2id with the library's current RFC 9106 low-memory profile."""
    return PasswordHasher()


def hash_password(password: str) -> str:
    return hasher().hash(password)


async def hash_password_off_loop(password: str) -> str:
    """``hash_password`` in a thread: Argon2 takes tens of milliseconds the event loop must not wait."""
    return await asyncio.to_thread(hash_password, password)


@lru_cache(maxsize=1)
def dummy_hash() -> str:
    """What an unknown user's password is checked against (made once: see ``warm_up``)."""
    return hasher().hash("not a real password, used to even out timing")


async def warm_up() -> None:
    """Make the dummy hash at start-up, so the first unknown user's login costs no extra hash."""
    await asyncio.to_thread(dummy_hash)


def verify_password(stored: str | None, password: str) -> bool:
    """True if ``password`` matches; with no stored hash, spends the same time and returns False."""
    try:
        return hasher().verify(stored or dummy_hash(), password) and stored is not None
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def verify_password_off_loop(stored: str | None, password: str) -> bool:
    """``verify_password`` in a thread (argon2-cffi lets go of the GIL while it hashes)."""
    return await asyncio.to_thread(verify_password, stored, password)


def needs_rehash(stored: str) -> bool:
    return hasher().check_needs_rehash(stored)


def check_policy(password: str, *, username: str = "") -> None:
    """Raise PasswordPolicyError with a readable reason (an English msgid) if the password is refused."""
    if len(password) < MIN_LENGTH:
        raise PasswordPolicyError(f"The password must have at least {MIN_LENGTH} characters.")
    if len(password) > MAX_LENGTH:
        raise PasswordPolicyError(f"The password must have at most {MAX_LENGTH} characters.")
    lowered = password.lower()
    if lowered in common_passwords():
        raise PasswordPolicyError("This password is too common; choose another.")
    if len(set(password)) < 4:
        raise PasswordPolicyError("This password is too common; choose another.")
    if username and username.lower() in lowered:
        raise PasswordPolicyError("The password must not contain the user name.")
