"""Server-side sessions behind an HttpOnly cookie, one cookie per realm.

The cookie holds a random token; the database holds only its SHA-256, so a leaked backup
does not hand out live sessions. A session ends when it is revoked (sign-out, password
change, deactivation), when it has been idle too long, or at its absolute lifetime.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from models.accounts import AuthSession, PortalAccount, Realm, StaffRole, StaffUser
from models.clients import Client
from server.settings import Settings, get_settings

COOKIE_NAMES = {Realm.STAFF: "cabinet_staff", Realm.PORTAL: "cabinet_portal"}
# Writing last_seen_at on every request would turn every read into a write; a minute of
# slack on a 30-minute idle timeout is harmless.
TOUCH_EVERY = timedelta(seconds=60)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> str:
    return secrets.token_urlsafe(32)


def idle_seconds(realm: Realm, settings: Settings | None = None) -> int:
    s = settings or get_settings()
    minutes = s.staff_idle_minutes if realm is Realm.STAFF else s.portal_idle_minutes
    return minutes * 60


@dataclass
class Caller:
    """Who is calling: a signed-in staff user or portal client, with their session."""

    realm: Realm
    session: AuthSession
    staff: StaffUser | None = None
    account: PortalAccount | None = None
    client: Client | None = None

    @classmethod
    def acting_as(cls, who: StaffUser | tuple[PortalAccount, Client]) -> Caller:
        """A caller for scripts (the demo practice): the person, with a session that is
        never saved, so actions record them as the author without anyone signing in."""
        if isinstance(who, StaffUser):
            session = AuthSession(id="", realm=Realm.STAFF, staff_user_id=who.id)
            return cls(realm=Realm.STAFF, session=session, staff=who)
        account, client = who
        session = AuthSession(id="", realm=Realm.PORTAL, portal_account_id=account.id)
        return cls(realm=Realm.PORTAL, session=session, account=account, client=client)

    @property
    def is_staff(self) -> bool:
        return self.staff is not None

    @property
    def role(self) -> StaffRole | None:
        return self.staff.role if self.staff else None

    @property
    def practice_id(self) -> int:
        if self.staff is not None:
            return self.staff.practice_id  # type: ignore[attr-defined, no-any-return]
        assert self.client is not None
        return self.client.practice_id  # type: ignore[attr-defined, no-any-return]

    @property
    def recipient(self) -> str:
        if self.staff is not None:
            return f"s:{self.staff.id}"
        assert self.account is not None
        return f"c:{self.account.id}"

    @property
    def label(self) -> str:
        if self.staff is not None:
            return self.staff.full_name
        assert self.client is not None
        return self.client.full_name

    @property
    def locale(self) -> str | None:
        if self.staff is not None:
            return self.staff.locale
        return self.account.locale if self.account else None


def session_is_live(session: AuthSession, now: datetime) -> bool:
    if session.revoked_at is not None or session.expires_at <= now:
        return False
    return session.last_seen_at + timedelta(seconds=session.idle_seconds) > now


async def load_caller(realm: Realm, token: str | None) -> Caller | None:
    """The caller behind a cookie token, or None when the session is missing or over."""
    if not token:
        return None
    session = await AuthSession.get_or_none(id=hash_token(token), realm=realm)
    now = datetime.now(UTC)
    if session is None or not session_is_live(session, now):
        return None
    caller = Caller(realm=realm, session=session)
    if realm is Realm.STAFF:
        staff = await StaffUser.get_or_none(id=session.staff_user_id)  # type: ignore[attr-defined]
        if staff is None or not staff.is_active:
            return None
        caller.staff = staff
    else:
        # One query with a join: every portal request and socket handshake comes here.
        account = await PortalAccount.get_or_none(
            id=session.portal_account_id  # type: ignore[attr-defined]
        ).select_related("client")
        if account is None or not account.is_active or account.client.deleted_at is not None:
            return None
        caller.account = account
        caller.client = account.client
    if now - session.last_seen_at > TOUCH_EVERY:
        session.last_seen_at = now
        await AuthSession.filter(id=session.id).update(last_seen_at=now)
    return caller
