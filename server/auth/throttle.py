"""Login throttling that slows attackers without locking the real user out.

Three scopes, each counted over a sliding window of failed attempts:
- account + address: a handful of failures blocks that address for that account only;
- address: one address guessing across many accounts is blocked;
- account: many addresses guessing one account are blocked, *except* a browser that has
  signed in to that account before, or set its password from the emailed link (it carries a
  signed "known device" cookie), so a distributed attack cannot keep the owner out.

A wrong current password given to change it counts as a failed sign-in
(``do_change_password``), checked as from a known device: the caller is signed in.

An "address" is an IPv4 address, or an IPv6 /64 network (``throttle_address``): a provider
gives each IPv6 connection a whole /64, so one person has billions of addresses to rotate.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from datetime import UTC, datetime, timedelta

from models.accounts import LoginAttempt, Realm
from server.errors import TooManyRequests
from server.i18n import gettext as _
from server.settings import get_settings

DEVICE_COOKIE = "cabinet_device"


def throttle_address(address: str) -> str:
    """What the throttles count as one address: an IPv4 address (an IPv4-mapped IPv6 one
    as its IPv4), or the /64 network of an IPv6 address. Anything else as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def device_proof(email: str) -> str:
    key = get_settings().secret_key.encode()
    return hmac.new(key, f"device:{email.lower()}".encode(), hashlib.sha256).hexdigest()[:32]


def is_known_device(cookie: str | None, email: str) -> bool:
    if not cookie:
        return False
    return any(hmac.compare_digest(part, device_proof(email)) for part in cookie.split("."))


def add_known_device(cookie: str | None, email: str) -> str:
    parts = [p for p in (cookie or "").split(".") if p]
    proof = device_proof(email)
    if proof not in parts:
        parts.append(proof)
    return ".".join(parts[-5:])


async def check_throttle(
    realm: Realm, email: str, address: str, known_device: bool, attempt: int | None = None
) -> None:
    """Raise TooManyRequests when a scope has had too many failures. ``attempt``: the row of
    the attempt being checked, written as a failure before this check and left out of the
    counts. Written first, an attempt still checking its password counts against the others
    running at the same time: thirty guesses sent at once are not thirty guesses let in."""
    s = get_settings()
    since = datetime.now(UTC) - timedelta(minutes=s.throttle_window_minutes)
    failures = LoginAttempt.filter(realm=realm, succeeded=False, created_at__gte=since)
    if attempt is not None:
        failures = failures.exclude(id=attempt)
    retry = s.throttle_window_minutes * 60
    message = _(
        "Too many failed sign-in attempts. Please wait %(minutes)d minutes and try again."
    ) % {"minutes": s.throttle_window_minutes}
    if await failures.filter(email=email, address=address).count() >= s.throttle_pair_limit:
        raise TooManyRequests(message, retry)
    if await failures.filter(address=address).count() >= s.throttle_address_limit:
        raise TooManyRequests(message, retry)
    if not known_device and await failures.filter(email=email).count() >= s.throttle_account_limit:
        raise TooManyRequests(message, retry)
