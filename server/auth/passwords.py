"""argon2id hashing, run off the event loop, and the password policy."""

from __future__ import annotations

import asyncio
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from server.errors import ValidationFailed
from server.i18n import gettext as _
from server.settings import get_settings

# argon2 takes tens of milliseconds and 64 MiB: a few at a time in threads keeps the event
# loop free for everybody else, and twenty logins at once cannot exhaust memory.
_slots = asyncio.Semaphore(4)


@lru_cache(maxsize=4)
def _hasher(time_cost: int, memory_kib: int) -> PasswordHasher:
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=1)


def hasher() -> PasswordHasher:
    s = get_settings()
    return _hasher(s.argon2_time_cost, s.argon2_memory_kib)


async def hash_password(password: str) -> str:
    async with _slots:
        return await asyncio.to_thread(hasher().hash, password)


async def verify_password(stored_hash: str | None, password: str) -> bool:
    """True when ``password`` matches. An unknown account passes ``None``: a dummy hash is
    verified instead so that the answer takes about as long as for a real account."""
    target = stored_hash or _dummy_hash()
    async with _slots:
        try:
            ok = await asyncio.to_thread(hasher().verify, target, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            ok = False
    return bool(ok) and stored_hash is not None


def needs_rehash(stored_hash: str) -> bool:
    return hasher().check_needs_rehash(stored_hash)


def _dummy_hash() -> str:
    s = get_settings()
    return _dummy_for(s.argon2_time_cost, s.argon2_memory_kib)


@lru_cache(maxsize=4)
def _dummy_for(time_cost: int, memory_kib: int) -> str:
    return _hasher(time_cost, memory_kib).hash("not a real password, only a timing decoy")


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    path = Path(__file__).with_name("common-passwords.txt")
    return frozenset(line.strip().lower() for line in path.read_text().splitlines() if line.strip())


def check_password_policy(password: str, email: str = "") -> None:
    """Raise ValidationFailed on the ``password`` field when the password is too weak."""
    settings = get_settings()
    if len(password) < settings.password_min_length:
        raise ValidationFailed(
            _("The password is too short."),
            {"password": _("Use at least %(n)d characters.") % {"n": settings.password_min_length}},
        )
    lowered = password.lower()
    local = email.split("@", 1)[0].lower()
    # "Password2024!" is as weak as "password": compare the word without its decorations.
    core = lowered.strip("0123456789!@#$%^&*?._- ")
    if (
        lowered in common_passwords()
        or core in common_passwords()
        or len(set(lowered)) <= 2
        or (len(local) >= 4 and local in lowered)
    ):
        raise ValidationFailed(
            _("This password is too easy to guess."),
            {"password": _("This password is too common or too easy to guess; choose another.")},
        )
